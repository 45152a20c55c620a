#!/usr/bin/env bash
# scripts/install-deps.sh — install the Debian packages Fintegrate needs.
#
# Idempotent: asks dpkg first and calls apt-get only for what is missing, so a
# machine that has everything pays ~50 ms.  On machines where apt starts
# services on install, the system copies of the servers are stopped again:
# the project runs its own instances on its own ports.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config ca-certificates curl procps
    postgresql postgresql-client libpq-dev
    rabbitmq-server librabbitmq-dev
    nginx-light spawn-fcgi libfcgi-dev
    libjansson-dev uuid-dev libssl-dev libcmocka-dev libcurl4-openssl-dev
    wrk
    # make chaos black-holes the database port for its last window
    iptables
    # the static checks (scripts/static-checks.sh) and make fuzz (libFuzzer)
    clang clang-format clang-tidy cppcheck
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# nginx-light and nginx-full both provide the nginx binary: either is fine.
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    missing=("${missing[@]/nginx-light}")
fi
filtered=()
for p in "${missing[@]}"; do [ -n "$p" ] && filtered+=("$p"); done
# The API and deployment checks of `make test` (tests/api, tests/config) run
# pinned npm tools (package-lock.json) under Node.js: Debian's nodejs and npm
# when the machine has no node/npm of its own (a NodeSource nodejs ships npm
# inside; Debian's npm package would conflict with it).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    command -v node >/dev/null 2>&1 || filtered+=(nodejs)
    command -v npm >/dev/null 2>&1 || filtered+=(npm)
fi

# promtool (the Prometheus config, rules and /metrics checks) without the
# ~300 MB `prometheus` package: only its binary, from the .deb.
install_promtool() {
    local tmp
    command -v promtool >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: promtool is missing (run as root to install it)" >&2
        return 1
    fi
    echo "install-deps: installing promtool (from Debian's prometheus package) into /usr/local/bin"
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get download prometheus >/dev/null; }; } &&
          dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool &&
          install -m 0755 usr/bin/promtool /usr/local/bin/promtool); then
        rm -rf "$tmp"
        echo "install-deps: could not install promtool" >&2
        return 1
    fi
    rm -rf "$tmp"
}

if [ ${#filtered[@]} -eq 0 ]; then
    install_promtool
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${filtered[*]} (run as root to install them)" >&2
    exit 1
fi

echo "install-deps: installing ${filtered[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null

# Where apt started the system services, stop them: they would hold our ports.
for svc in rabbitmq-server nginx postgresql; do
    if command -v service >/dev/null 2>&1; then
        service "$svc" stop >/dev/null 2>&1 || true
    fi
done
# The system broker's epmd on the default port outlives it.  `epmd -kill`
# refuses while any node is registered, so a running Fintegrate stack's own
# epmd is never touched (a blanket pkill once took down a test stack's broker).
if command -v epmd >/dev/null 2>&1; then
    epmd -port 4369 -kill >/dev/null 2>&1 || true
fi
install_promtool
echo "install-deps: done"
