# shellcheck shell=bash
# scripts/env.sh — sourced by every stack script (stack.sh, migrate.sh,
# setup-admin.sh, test.sh).  Derives all of a Fintegrate stack's settings from
# the environment, with the defaults of docs/OPERATIONS.md §2, validates
# them (one clear line naming the variable on error) and exports them:
#
#   FINTEGRATE_CHECKOUT        the checkout this file lives in (always derived)
#   FINTEGRATE_RUN_DIR         data, sockets, logs, pid files (see fi_pick_run_dir)
#   FINTEGRATE_HTTP_PORT 8080  FINTEGRATE_PG_PORT 15432
#   FINTEGRATE_AMQP_PORT 5672  FINTEGRATE_AMQP_MGMT_PORT 15672
#   FINTEGRATE_AMQP_DIST_PORT 25672  FINTEGRATE_EPMD_PORT 4369
#   FINTEGRATE_WORKERS 8
#   FINTEGRATE_RATE_KEY 50 / FINTEGRATE_BURST_KEY 100 (nginx, per API key)
#   FINTEGRATE_RATE_IP 200 / FINTEGRATE_BURST_IP 400  (nginx, per client IP)
#   FINTEGRATE_DB_URL   libpq conninfo, derived from the port unless set
#   FINTEGRATE_AMQP_URL amqp://guest:guest@127.0.0.1:PORT unless set (no
#                       trailing slash: librabbitmq reads it as the empty vhost)
#   FINTEGRATE_BASE_URL http://127.0.0.1:HTTP_PORT
#   FINTEGRATE_AMQP_NODENAME  fintegrate@localhost on the default AMQP port,
#                       fintegrate-<amqp port>@localhost otherwise
#   FINTEGRATE_FCGI_BIN the FastCGI program (default bin/fintegrate-fcgi)
#   FINTEGRATE_PG_FAST  1 = fsync/synchronous_commit/full_page_writes off (tests)
#   FINTEGRATE_ADMIN_API_KEY  optional; checked by setup-admin.sh, never printed
#
# FINTEGRATE_RUN_NAME (default ".run") is the name of the run directory inside
# the checkout; test.sh sets ".run-test".  An explicit FINTEGRATE_RUN_DIR wins.
#
# Sourcing returns non-zero (so a `set -e` caller stops) on bad settings.

fi_err() { printf 'fintegrate: %s\n' "$*" >&2; }

# fi_check_int NAME MIN MAX — the variable NAME holds a decimal integer in range.
fi_check_int() {
    local name=$1 min=$2 max=$3 val
    val=${!name}
    if ! [[ $val =~ ^[0-9]+$ ]] || [ "${#val}" -gt 6 ] || [ "$val" -lt "$min" ] || [ "$val" -gt "$max" ]; then
        fi_err "$name must be an integer between $min and $max (got \"$val\")"
        return 1
    fi
    # Normalise "08080" to 8080 so that every consumer sees one spelling.
    printf -v "$name" '%d' "$((10#$val))"
}

# fi_dir_traversable DIR — every directory from / down to DIR (DIR included,
# when it exists) is searchable by other users (postgres, www-data).
fi_dir_traversable() {
    local d=$1 mode
    while :; do
        if [ -d "$d" ]; then
            mode=$(stat -c %A "$d") || return 1
            case ${mode:9:1} in x|t) ;; *) return 1 ;; esac
        fi
        [ "$d" = / ] && return 0
        d=$(dirname "$d")
    done
}

# fi_socket_paths_fit RUN_DIR — the longest unix socket path stays <= 107 bytes.
fi_socket_paths_fit() {
    local run=$1 p
    for p in "$run/pg/.s.PGSQL.$FINTEGRATE_PG_PORT" "$run/fcgi.sock"; do
        [ "${#p}" -le 107 ] || return 1
    done
}

# fi_pick_run_dir — sets FINTEGRATE_RUN_DIR (absolute).
fi_pick_run_dir() {
    local name=${FINTEGRATE_RUN_NAME:-.run} candidate base sum fallback why
    if [ -n "${FINTEGRATE_RUN_DIR:-}" ]; then
        case $FINTEGRATE_RUN_DIR in
            /*) ;;
            *) FINTEGRATE_RUN_DIR="$PWD/$FINTEGRATE_RUN_DIR" ;;
        esac
        FINTEGRATE_RUN_DIR=${FINTEGRATE_RUN_DIR%/}
        if ! fi_dir_traversable "$(dirname "$FINTEGRATE_RUN_DIR")"; then
            fi_err "FINTEGRATE_RUN_DIR=$FINTEGRATE_RUN_DIR: a parent folder is not traversable by other users (postgres, www-data need o+x)"
            return 1
        fi
        if ! fi_socket_paths_fit "$FINTEGRATE_RUN_DIR"; then
            fi_err "FINTEGRATE_RUN_DIR=$FINTEGRATE_RUN_DIR is too long: socket paths under it would exceed 107 bytes"
            return 1
        fi
        return 0
    fi
    if [[ ! $name =~ ^[A-Za-z0-9._-]+$ ]]; then
        fi_err "FINTEGRATE_RUN_NAME must be a plain folder name (got \"$name\")"
        return 1
    fi
    candidate="$FINTEGRATE_CHECKOUT/$name"
    if ! fi_dir_traversable "$FINTEGRATE_CHECKOUT"; then
        why="a parent folder of the checkout is not traversable by postgres/www-data"
    elif ! fi_socket_paths_fit "$candidate"; then
        why="socket paths under it would pass 107 bytes"
    else
        FINTEGRATE_RUN_DIR=$candidate
        return 0
    fi
    base=${FINTEGRATE_CHECKOUT##*/}
    base=${base//[^A-Za-z0-9._-]/_}
    sum=$(printf '%s' "$FINTEGRATE_CHECKOUT" | cksum | cut -d' ' -f1)
    fallback="/tmp/fintegrate-${base:0:32}-$sum/${name#.}"
    if ! fi_socket_paths_fit "$fallback"; then
        fi_err "cannot find a run directory whose socket paths fit in 107 bytes; set FINTEGRATE_RUN_DIR"
        return 1
    fi
    # Say so only once per process tree (stack.sh calls migrate.sh etc.).
    if [ "${_FINTEGRATE_RUN_DIR_NOTE:-}" != "$fallback" ]; then
        fi_err "note: not using $candidate ($why); using $fallback"
        export _FINTEGRATE_RUN_DIR_NOTE=$fallback
    fi
    FINTEGRATE_RUN_DIR=$fallback
}

# fi_visible_ascii STRING — only characters 0x21-0x7e.
fi_visible_ascii() {
    local LC_ALL=C
    [[ $1 =~ ^[!-~]+$ ]]
}

fi_load_env() {
    local v
    FINTEGRATE_CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P) || return 1

    : "${FINTEGRATE_HTTP_PORT:=8080}"
    : "${FINTEGRATE_PG_PORT:=15432}"
    : "${FINTEGRATE_AMQP_PORT:=5672}"
    : "${FINTEGRATE_AMQP_MGMT_PORT:=15672}"
    : "${FINTEGRATE_AMQP_DIST_PORT:=25672}"
    : "${FINTEGRATE_EPMD_PORT:=4369}"
    : "${FINTEGRATE_WORKERS:=8}"
    : "${FINTEGRATE_RATE_KEY:=50}"
    : "${FINTEGRATE_BURST_KEY:=100}"
    : "${FINTEGRATE_RATE_IP:=200}"
    : "${FINTEGRATE_BURST_IP:=400}"
    : "${FINTEGRATE_PG_FAST:=0}"

    # Ports stay below the ephemeral range (docs/OPERATIONS.md pitfall 12).
    for v in FINTEGRATE_HTTP_PORT FINTEGRATE_PG_PORT FINTEGRATE_AMQP_PORT \
             FINTEGRATE_AMQP_MGMT_PORT FINTEGRATE_AMQP_DIST_PORT FINTEGRATE_EPMD_PORT; do
        fi_check_int "$v" 1 32767 || return 1
    done
    fi_check_int FINTEGRATE_WORKERS 1 256 || return 1
    fi_check_int FINTEGRATE_RATE_KEY 1 999999 || return 1
    fi_check_int FINTEGRATE_BURST_KEY 0 999999 || return 1
    fi_check_int FINTEGRATE_RATE_IP 1 999999 || return 1
    fi_check_int FINTEGRATE_BURST_IP 0 999999 || return 1
    case $FINTEGRATE_PG_FAST in
        0|1) ;;
        *) fi_err "FINTEGRATE_PG_FAST must be 0 or 1 (got \"$FINTEGRATE_PG_FAST\")"; return 1 ;;
    esac
    local -A seen=()
    for v in FINTEGRATE_HTTP_PORT FINTEGRATE_PG_PORT FINTEGRATE_AMQP_PORT \
             FINTEGRATE_AMQP_MGMT_PORT FINTEGRATE_AMQP_DIST_PORT FINTEGRATE_EPMD_PORT; do
        if [ -n "${seen[${!v}]:-}" ]; then
            fi_err "$v=${!v} is the same port as ${seen[${!v}]}"
            return 1
        fi
        seen[${!v}]=$v
    done

    # Checked here, before anything starts; installed by setup-admin.sh.
    if [ -n "${FINTEGRATE_ADMIN_API_KEY:-}" ]; then
        if [ "${#FINTEGRATE_ADMIN_API_KEY}" -lt 20 ] || [ "${#FINTEGRATE_ADMIN_API_KEY}" -gt 512 ] ||
            ! fi_visible_ascii "$FINTEGRATE_ADMIN_API_KEY"; then
            fi_err "FINTEGRATE_ADMIN_API_KEY must be 20-512 visible ASCII characters, no spaces (got ${#FINTEGRATE_ADMIN_API_KEY} characters)"
            return 1
        fi
    fi

    fi_pick_run_dir || return 1

    : "${FINTEGRATE_DB_URL:=host=127.0.0.1 port=$FINTEGRATE_PG_PORT dbname=fintegrate user=fintegrate}"
    : "${FINTEGRATE_AMQP_URL:=amqp://guest:guest@127.0.0.1:$FINTEGRATE_AMQP_PORT}"
    FINTEGRATE_BASE_URL="http://127.0.0.1:$FINTEGRATE_HTTP_PORT"
    if [ "$FINTEGRATE_AMQP_PORT" = 5672 ]; then
        : "${FINTEGRATE_AMQP_NODENAME:=fintegrate@localhost}"
    else
        : "${FINTEGRATE_AMQP_NODENAME:=fintegrate-$FINTEGRATE_AMQP_PORT@localhost}"
    fi
    : "${FINTEGRATE_FCGI_BIN:=$FINTEGRATE_CHECKOUT/bin/fintegrate-fcgi}"
    : "${FINTEGRATE_PG_BIN:=/usr/lib/postgresql/15/bin}"

    export FINTEGRATE_CHECKOUT FINTEGRATE_RUN_DIR \
        FINTEGRATE_HTTP_PORT FINTEGRATE_PG_PORT FINTEGRATE_AMQP_PORT \
        FINTEGRATE_AMQP_MGMT_PORT FINTEGRATE_AMQP_DIST_PORT FINTEGRATE_EPMD_PORT \
        FINTEGRATE_WORKERS FINTEGRATE_RATE_KEY FINTEGRATE_BURST_KEY \
        FINTEGRATE_RATE_IP FINTEGRATE_BURST_IP FINTEGRATE_PG_FAST \
        FINTEGRATE_DB_URL FINTEGRATE_AMQP_URL FINTEGRATE_BASE_URL \
        FINTEGRATE_AMQP_NODENAME FINTEGRATE_FCGI_BIN FINTEGRATE_PG_BIN
}

fi_load_env || return 1
