#!/usr/bin/env bash
# tests/api/npm_ci.sh — make the checkout's node_modules/ match
# package-lock.json (the pinned @redocly/cli, ajv, newman, yaml), running
# `npm ci` only when the lock file or Node.js changed since the last install
# (~25 s; otherwise ~0.1 s).  Only the npm registry is needed.
#
# Exit status: 0 ready, 3 node or npm is not installed (the caller skips the
# API steps and says so), anything else: npm ci failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "npm_ci: node and npm are not installed (scripts/install-deps.sh installs Debian's nodejs and npm)" >&2
    exit 3
fi

# One install at a time per checkout.
exec 9<package-lock.json
flock -w 600 9

stamp=node_modules/.fintegrate-lock-stamp
want="$(sha256sum package.json package-lock.json | cut -c1-64 | tr '\n' ' ')node $(node --version)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "npm_ci: installing the pinned npm tools into node_modules/ (npm ci)" >&2
npm ci --no-audit --no-fund --prefer-offline --loglevel=error >&2
printf '%s' "$want" >"$stamp"
