#!/usr/bin/env bash
# tests/config/test_deploy.sh — the Docker deployment, checked without a
# Docker engine (docker-compose.yml, Dockerfile, docker/):
#   * tests/config/check_deploy.js: the compose file parses and everything it
#     refers to exists, Prometheus/Grafana wiring, and every metric the
#     dashboard and the alert rules use is exported by the live /metrics;
#   * promtool check config / check rules / test rules (alerts_test.yml), and
#     promtool check metrics on the live /metrics;
#   * the container's nginx configuration (docker/entrypoint.sh render-nginx)
#     passes `nginx -t`, and docker/entrypoint.sh is valid bash.
# Run by scripts/test.sh with the test stack up (FINTEGRATE_BASE_URL).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

pass=0 fail=0
step() {   # step NAME CMD... — one check, its output indented on failure
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass=$((pass + 1)); echo "ok - $name"
    else
        fail=$((fail + 1)); echo "not ok - $name"; printf '%s\n' "$out" | sed 's/^/    /'
    fi
}

# check_deploy.js prints its own ok/not ok lines and closing line.
out=$(node tests/config/check_deploy.js 2>&1)
rc=$?
printf '%s\n' "$out" | grep -v '^[0-9]* passed, [0-9]* failed$'
n=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' | tail -n 1)
if [ -n "$n" ]; then
    pass=$((pass + ${n% *})); fail=$((fail + ${n#* }))
fi
[ "$rc" = 0 ] || [ -n "$n" ] || fail=$((fail + 1))

if command -v promtool >/dev/null 2>&1; then
    step "promtool check config docker/prometheus/prometheus.yml" promtool check config docker/prometheus/prometheus.yml
    step "promtool check rules docker/prometheus/alerts.yml" promtool check rules docker/prometheus/alerts.yml
    step "promtool test rules tests/config/alerts_test.yml" promtool test rules tests/config/alerts_test.yml
    if [ -n "${FINTEGRATE_BASE_URL:-}" ]; then
        metrics_lint() {
            local body
            body=$(curl -sf -m 10 "$FINTEGRATE_BASE_URL/metrics") || { echo "GET /metrics failed"; return 1; }
            printf '%s\n' "$body" | promtool check metrics
        }
        step "promtool check metrics on the live GET /metrics" metrics_lint
    fi
else
    fail=$((fail + 1))
    echo "not ok - promtool is not installed (scripts/install-deps.sh installs it from Debian's prometheus package)"
fi

step "docker/entrypoint.sh is valid bash" bash -n docker/entrypoint.sh
nginx_check() {
    local tmp rc
    tmp=$(mktemp -d /tmp/fintegrate-nginx-check.XXXXXX)
    FINTEGRATE_HTTP_PORT=8080 docker/entrypoint.sh render-nginx "$tmp" &&
        ! grep -q 'listen 127\.0\.0\.1' "$tmp"/nginx/conf.d/*.conf &&
        grep -q 'listen 8080' "$tmp"/nginx/conf.d/*.conf &&
        nginx -t -q -p "$tmp/" -c "$tmp/nginx.conf" -e "$tmp/logs/nginx-error.log"
    rc=$?
    rm -rf "$tmp"
    return "$rc"
}
if command -v nginx >/dev/null 2>&1; then
    step "the container's nginx configuration passes nginx -t (listening on all interfaces)" nginx_check
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
