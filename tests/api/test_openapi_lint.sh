#!/usr/bin/env bash
# tests/api/test_openapi_lint.sh — docs/openapi.yaml is a clean OpenAPI 3.1
# description (@redocly/cli lint, recommended-strict: examples valid against
# their schemas, every operation with an id, summary, 4xx and security...),
# and docs/openapi.json (what nginx serves) is generated from it.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# No usage telemetry or update check (only the npm registry is reachable).
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
pass=0 fail=0
if node_modules/.bin/redocly lint --config tests/api/redocly.yaml --format stylish docs/openapi.yaml; then
    pass=$((pass + 1)); echo "ok - redocly lint docs/openapi.yaml"
else
    fail=$((fail + 1)); echo "not ok - redocly lint docs/openapi.yaml"
fi
if node tests/api/openapi_json.js --check; then
    pass=$((pass + 1)); echo "ok - docs/openapi.json is generated from docs/openapi.yaml"
else
    fail=$((fail + 1)); echo "not ok - docs/openapi.json is generated from docs/openapi.yaml"
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
