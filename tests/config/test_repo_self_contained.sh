#!/usr/bin/env bash
# tests/config/test_repo_self_contained.sh — the repository stands on its
# own: a reader with only this checkout can follow every reference.
#   * no tracked file names a path outside the repository: the parent
#     directory's shared/ folder (`../` + `shared`) or the machine's copy of
#     it (`/work/` + `shared`);
#   * every relative link of every tracked Markdown file (README.md,
#     docs/*.md, …) leads to a file or folder that exists, and a link's
#     #anchor into a Markdown file names one of its headings (GitHub's slugs);
#   * every "pitfall N" a tracked file cites is an item of the numbered list
#     in docs/OPERATIONS.md, "Pitfalls of running the servers as plain
#     processes".
# Needs only bash, git, grep, sed, awk and perl; no stack. Run by scripts/test.sh
# with the other tests/config/test_* checks, or directly.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
export LC_ALL=C.UTF-8

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() {  # not_ok NAME DETAILS
    fail=$((fail + 1)); echo "not ok - $1"; printf '%s\n' "$2" | sed 's/^/    /'
}

# search ERE-or-fixed ARGS... — grep over the tracked files (git grep), or
# over the checkout without build output when this is not a git work tree.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    search() { git grep -n -I "$@" -- . 2>/dev/null; }
    mapfile -t MD_FILES < <(git ls-files -- '*.md')
else
    search() {
        grep -r -n -I --exclude-dir=.git --exclude-dir=node_modules --exclude-dir=build \
            --exclude-dir='.run*' "$@" . 2>/dev/null | sed 's|^\./||'
    }
    mapfile -t MD_FILES < <(find . \( -name .git -o -name node_modules -o -name build \
        -o -name '.run*' \) -prune -o -type f -name '*.md' -print | sed 's|^\./||')
fi

# --- 1. no path outside the repository ----------------------------------------
# The patterns are built so that this file does not match them itself.
for pat in "../""shared" "/work/""shared"; do
    hits=$(search -F -e "$pat")
    if [ -z "$hits" ]; then
        ok "no tracked file names $pat"
    else
        not_ok "no tracked file names $pat" "$hits"
    fi
done

# --- 2. relative Markdown links -----------------------------------------------
# check_links FILE... — prints "FILE<TAB>ok" or "FILE<TAB>LINE: TARGET: why"
# for every file. Links (inline and reference-style) are read outside fenced
# code blocks and code spans; an anchor into a Markdown file must be the
# GitHub slug of one of its headings (a repeated heading also gets -1, -2, …).
check_links() {
    perl -CSD -e '
        use strict; use warnings;
        my %slugs;
        sub slugs {
            my ($f) = @_;
            return $slugs{$f} if $slugs{$f};
            my (%s, %seen, $code);
            open(my $h, "<", $f) or return $slugs{$f} = {};
            while (<$h>) {
                if (/^ {0,3}(```|~~~)/) { $code = !$code; next }
                next if $code || !/^#{1,6}\s+(.*?)\s*#*\s*$/;
                my $t = lc $1;
                $t =~ s/[^\p{L}\p{N}\p{M}_ \-]//g;
                $t =~ s/ /-/g;
                my $n = $seen{$t}++;
                $s{$n ? "$t-$n" : $t} = 1;
            }
            return $slugs{$f} = \%s;
        }
        for my $md (@ARGV) {
            (my $dir = $md) =~ s{/?[^/]*$}{};
            $dir = "." if $dir eq "";
            open(my $h, "<", $md) or do { print "$md\tcannot read\n"; next };
            my ($code, $bad, $n) = (0, 0, 0);
            while (my $line = <$h>) {
                $n++;
                if ($line =~ /^ {0,3}(```|~~~)/) { $code = !$code; next }
                next if $code;
                $line =~ s/`[^`]*`/``/g;
                my @t = $line =~ /\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g;
                push @t, $1 if $line =~ /^ {0,3}\[[^\]]+\]:\s+(\S+)/;
                for my $t (@t) {
                    next if $t =~ m{^(?:[a-z][a-z0-9+.-]*:)}i;
                    my ($p, $a) = split /#/, $t, 2;
                    my $why;
                    my $dest = $p eq "" ? $md : $dir eq "." ? $p : "$dir/$p";
                    if ($p =~ m{^/}) { $why = "an absolute path (link relatively)" }
                    elsif (!-e $dest) { $why = "no such file" }
                    elsif (defined $a && $a ne "" && $dest =~ /\.md$/ && -f $dest
                           && !slugs($dest)->{$a}) { $why = "no heading with the anchor #$a in $dest" }
                    next unless $why;
                    print "$md\t$n: $t: $why\n";
                    $bad = 1;
                }
            }
            print "$md\tok\n" unless $bad;
        }
    ' "$@"
}

declare -A LINK_BAD=()
while IFS=$'\t' read -r md what; do
    [ "$what" = ok ] && { LINK_BAD[$md]=${LINK_BAD[$md]-}; continue; }
    LINK_BAD[$md]+="$md:$what"$'\n'
done < <(check_links "${MD_FILES[@]}")
for md in "${MD_FILES[@]}"; do
    if [ -z "${LINK_BAD[$md]-}" ]; then
        ok "every relative link of $md resolves"
    else
        not_ok "every relative link of $md resolves" "${LINK_BAD[$md]%$'\n'}"
    fi
done

# --- 3. "pitfall N" ------------------------------------------------------------
ops=docs/OPERATIONS.md
items=$(awk '/^### Pitfalls of running the servers as plain processes/ { on = 1; next }
             on && /^#/ { exit }
             on && /^[0-9]+\. / { sub(/\..*/, ""); print }' "$ops" 2>/dev/null)
if [ -z "$items" ]; then
    not_ok "$ops lists the pitfalls the scripts cite" \
        "no numbered list under \"### Pitfalls of running the servers as plain processes\""
else
    bad=""
    while IFS= read -r hit; do
        where=${hit%%:pitfall*}
        nums=$(printf '%s\n' "${hit#"$where":}" | sed -E 's/^pitfalls? //' | tr ',' ' ')
        for tok in $nums; do
            if [[ $tok =~ ^([0-9]+)-([0-9]+)$ ]]; then
                seq_list=$(seq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
            else
                seq_list=$tok
            fi
            for k in $seq_list; do
                printf '%s\n' "$items" | grep -qx -- "$k" ||
                    bad+="$where: pitfall $k is not in $ops"$'\n'
            done
        done
    done < <(search -o -E 'pitfalls? [0-9]+(-[0-9]+)?(, [0-9]+(-[0-9]+)?)*')
    if [ -z "$bad" ]; then
        ok "every \"pitfall N\" cited is in $ops"
    else
        not_ok "every \"pitfall N\" cited is in $ops" "${bad%$'\n'}"
    fi
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
