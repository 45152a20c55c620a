#!/usr/bin/env bash
# tests/api/test_contract.sh — the running test stack's responses against
# docs/openapi.json (see contract_check.js).  Needs FINTEGRATE_BASE_URL and
# FINTEGRATE_ADMIN_API_KEY (scripts/test.sh exports them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
exec node tests/api/contract_check.js
