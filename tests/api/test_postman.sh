#!/usr/bin/env bash
# tests/api/test_postman.sh — the Postman collection under newman against the
# running test stack (see postman_run.js).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
exec node tests/api/postman_run.js
