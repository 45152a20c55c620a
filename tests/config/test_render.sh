#!/usr/bin/env bash
# tests/config/test_render.sh — the config template renderer of
# scripts/stack.d/lib.sh (`render`, used by scripts/stack.sh and
# docker/entrypoint.sh): a placeholder left unfilled is an error that names
# it (the renderer once grepped a temp file it had just deleted, so the list
# was always empty) and writes nothing; filled values are taken literally
# (| & \ included).  Needs only bash and sed; no stack.  Run by
# scripts/test.sh with the other tests/config/test_* checks, or directly.
# shellcheck source-path=SCRIPTDIR/../..
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

pass=0 fail=0
check() {  # check NAME CONDITION-STATUS DETAILS
    if [ "$2" = 0 ]; then
        pass=$((pass + 1)); echo "ok - $1"
    else
        fail=$((fail + 1)); echo "not ok - $1"; printf '%s\n' "$3" | sed 's/^/    /'
    fi
}

tmp=$(mktemp -d /tmp/fintegrate-render-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
printf 'root @RUN_DIR@;\nlisten @HTTP_PORT@;\nx @NOT_KNOWN@ @ALSO_LEFT@ @NOT_KNOWN@;\n' >"$tmp/t.in"

# render runs in a subshell: its die exits that, not this script.
out=$( (. scripts/stack.d/lib.sh && render "$tmp/t.in" "$tmp/t.out" RUN_DIR=/r HTTP_PORT=1) 2>&1)
rc=$?
[ "$rc" != 0 ] && [[ $out == *"@NOT_KNOWN@"* ]] && [[ $out == *"@ALSO_LEFT@"* ]] &&
    [[ $out != *"@RUN_DIR@"* ]]
check "an unfilled placeholder is an error naming each one left" $? "exit $rc: $out"
[ ! -e "$tmp/t.out" ] && [ ! -e "$tmp/t.out.tmp" ]
check "nothing is written when a placeholder is left" $? "$(ls "$tmp")"

printf 'root @RUN_DIR@;\nlisten 127.0.0.1:@HTTP_PORT@;\n' >"$tmp/ok.in"
out=$( (. scripts/stack.d/lib.sh && render "$tmp/ok.in" "$tmp/ok.out" \
    -e 's|127\.0\.0\.1:@HTTP_PORT@|@HTTP_PORT@|' 'RUN_DIR=/a|b&c\d' HTTP_PORT=8080) 2>&1)
rc=$?
want=$'root /a|b&c\\d;\nlisten 8080;'
got=$(cat "$tmp/ok.out" 2>/dev/null)
[ "$rc" = 0 ] && [ "$got" = "$want" ]
check "every placeholder filled, values literal, -e applied first" $? "exit $rc: $out; got: $got"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
