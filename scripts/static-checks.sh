#!/usr/bin/env bash
# scripts/static-checks.sh — the static half of `make test`: formatting
# (clang-format, .clang-format) and the analysers (cppcheck, clang-tidy with
# .clang-tidy) over the service and the consumer program.  A tool that is not
# on the machine is skipped with a line saying so (they come with this
# project's development machines, not with install-deps.sh); a finding fails.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

status=0
run() {
    local name=$1 tool=$2; shift 2
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "static-checks: SKIPPED $name ($tool is not installed)"
        return
    fi
    local start=$SECONDS
    if "$@" >/tmp/fintegrate-static-$name.log 2>&1; then
        echo "--- PASS static $name ($((SECONDS - start))s)"
    else
        echo "--- FAIL static $name ($((SECONDS - start))s)"
        tail -40 "/tmp/fintegrate-static-$name.log"
        status=1
    fi
}

run format clang-format make --no-print-directory format-check
if command -v cppcheck >/dev/null 2>&1 && command -v clang-tidy >/dev/null 2>&1; then
    run lint cppcheck make --no-print-directory lint
else
    echo "static-checks: SKIPPED lint (cppcheck and clang-tidy are both needed)"
fi
exit $status
