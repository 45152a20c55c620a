# shellcheck shell=bash
# scripts/stack.d/lib.sh — the process helpers of scripts/stack.sh, also
# sourced by docker/entrypoint.sh: messages, pid files, liveness that knows
# zombies, waiting for a service, stopping a process (and its group), free
# ports, and rendering the config templates (nginx/).  Functions only, and
# a default for FINTEGRATE_STOP_TIMEOUT (seconds before KILL).  say/die print "stack: …"; a script that
# sources this file may define its own after it (docker/entrypoint.sh does),
# and the helpers here then use those.

say() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

: "${FINTEGRATE_STOP_TIMEOUT:=30}"

# pid_alive PID — the process exists and is not a zombie (pitfall 15).
pid_alive() {
    local pid=${1:-} line state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    line=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    state=${line##*) }
    state=${state:0:1}
    [ "$state" != Z ] && [ "$state" != X ]
}

# pid_is PID WORD — alive and its command line contains WORD.  Each service's
# WORD is a path inside this run directory, so a stale pid file naming a
# recycled PID (or another stack's server) is never taken for ours.
pid_is() {
    local pid=${1:-} word=$2 cmd
    pid_alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$word"* ]]
}

# read_pid FILE — the first line of FILE if it is a number, else nothing.
read_pid() {
    local pid=""
    [ -r "$1" ] && { read -r pid <"$1" || true; }
    [[ $pid =~ ^[0-9]+$ ]] && printf '%s' "$pid"
    return 0
}

# pid_file_is FILE WORD — the pid in FILE if pid_is PID WORD, else nothing.
pid_file_is() {
    local pid
    pid=$(read_pid "$1")
    pid_is "$pid" "$2" && printf '%s' "$pid"
    return 0
}

# stop_pid NAME PID SIGNAL... — send each SIGNAL in turn, waiting up to
# FINTEGRATE_STOP_TIMEOUT seconds after each for the process to go (a zombie
# counts as gone: pitfall 15), then KILL.
stop_pid() {
    local name=$1 pid=$2 sig i limit
    shift 2
    limit=$((FINTEGRATE_STOP_TIMEOUT * 10))
    for sig in "$@" KILL; do
        pid_alive "$pid" || return 0
        [ "$sig" = "$1" ] || say "$name (pid $pid) still running: sending $sig"
        kill "-$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < limit; i++)); do
            pid_alive "$pid" || return 0
            sleep 0.1
        done
    done
    say "$name (pid $pid) did not die"
    return 1
}

# already_running NAME PID — when PID is not empty, says "NAME: already
# running (pid PID)" (a start leaves a running service alone); status 1 when
# it is empty.
already_running() {
    [ -n "$2" ] || return 1
    say "$1: already running (pid $2)"
}

# stop_service NAME PID SIGNAL... — "NAME: not running" (status 1) when PID
# is empty, else "NAME: stopping (pid PID)", stop_pid, "NAME: stopped".
stop_service() {
    local name=$1 pid=$2
    shift 2
    if [ -z "$pid" ]; then
        say "$name: not running"
        return 1
    fi
    say "$name: stopping (pid $pid)"
    stop_pid "$name" "$pid" "$@" || true
    say "$name: stopped"
}

# group_pids PGID — the non-zombie processes left in process group PGID
# (a session leader's children share its PGID), space-separated.
group_pids() {
    local pgid=$1 p
    for p in $(pgrep -g "$pgid" 2>/dev/null || true); do
        pid_alive "$p" && printf '%s ' "$p"
    done
    return 0
}

# port_busy PORT — something accepts connections on 127.0.0.1:PORT.
port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# need_free_port NAME PORT VAR — fail early, naming the variable, instead of
# waiting for a server that cannot bind.
need_free_port() {
    if port_busy "$2"; then
        die "$1: 127.0.0.1:$2 is already in use by another process (change $3, or stop that process)"
    fi
}

# http_code URL — the HTTP status of GET URL (5 s at most), "000" or
# nothing when there is no answer.
http_code() {
    curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" || true
}

# show_log_tail FILE... — the last lines of the logs that explain a failure.
show_log_tail() {
    local f
    for f in "$@"; do
        [ -s "$f" ] || continue
        printf -- '--- last lines of %s ---\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
}

# wait_for NAME TIMEOUT WATCH_PID LOGS CMD... — poll CMD every 0.1 s until it
# succeeds; fail (with the log tails) on timeout or when WATCH_PID dies.
# LOGS is a space-separated list of files.
wait_for() {
    local name=$1 timeout=$2 watch=$3 logs=$4 i limit
    shift 4
    limit=$((timeout * 10))
    for ((i = 0; i < limit; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ -n "$watch" ] && ! pid_alive "$watch"; then
            say "$name exited during start-up"
            # shellcheck disable=SC2086  # word splitting of the file list
            show_log_tail $logs
            return 1
        fi
        sleep 0.1
    done
    say "$name was not ready after ${timeout}s"
    # shellcheck disable=SC2086
    show_log_tail $logs
    return 1
}

# sed_escape VALUE — VALUE made safe as a sed replacement (delimiter |).
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# render TEMPLATE OUT [-e SED]... [NAME=VALUE]... — OUT is TEMPLATE with the
# sed expressions applied first, then every @NAME@ replaced by its VALUE.
# A placeholder left unfilled is an error naming it (OUT is not written).
render() {
    local tpl=$1 out=$2 left
    local -a args=()
    shift 2
    while [ $# -gt 0 ]; do
        case $1 in
            -e) args+=(-e "$2"); shift 2 ;;
            *=*) args+=(-e "s|@${1%%=*}@|$(sed_escape "${1#*=}")|g"); shift ;;
            *) die "render: \"$1\" is neither -e SED nor NAME=VALUE" ;;
        esac
    done
    sed "${args[@]}" "$tpl" >"$out.tmp"
    if grep -q '@[A-Z_]*@' "$out.tmp"; then
        left=$(grep -o '@[A-Z_]*@' "$out.tmp" | sort -u | tr '\n' ' ')
        rm -f "$out.tmp"
        die "unknown placeholder left in $out: $left"
    fi
    mv "$out.tmp" "$out"
}

# render_nginx RUN CHECKOUT BACKUPS [-e SED]... — nginx's configuration for
# the run directory RUN from CHECKOUT/nginx/ (nginx.conf.in → RUN/nginx.conf,
# conf.d/*.conf → RUN/nginx/conf.d/), BACKUPS the upstream's backup server
# lines, the limits from FINTEGRATE_RATE_KEY/BURST_KEY/RATE_IP/BURST_IP and
# the port from FINTEGRATE_HTTP_PORT; plus copies of docs/openapi.json and
# .yaml that nginx (www-data) serves from RUN, reachable even when the
# checkout is not.  Every path nginx uses is inside RUN (pitfall 13).
render_nginx() {
    local run=$1 checkout=$2 backups=$3 f
    shift 3
    local -a vars=("$@" "RUN_DIR=$run" "FCGI_BACKUPS=$backups" "CHECKOUT=$checkout"
        "HTTP_PORT=$FINTEGRATE_HTTP_PORT" "RATE_KEY=$FINTEGRATE_RATE_KEY"
        "BURST_KEY=$FINTEGRATE_BURST_KEY" "RATE_IP=$FINTEGRATE_RATE_IP"
        "BURST_IP=$FINTEGRATE_BURST_IP")
    mkdir -p "$run/nginx/conf.d" "$run/nginx/openapi"
    rm -f "$run/nginx/conf.d/"*.conf
    render "$checkout/nginx/nginx.conf.in" "$run/nginx.conf" "${vars[@]}"
    for f in "$checkout"/nginx/conf.d/*.conf; do
        render "$f" "$run/nginx/conf.d/$(basename "$f")" "${vars[@]}"
    done
    chmod 0755 "$run/nginx" "$run/nginx/openapi"
    for f in openapi.json openapi.yaml; do
        if [ -f "$checkout/docs/$f" ]; then
            install -m 0644 "$checkout/docs/$f" "$run/nginx/openapi/$f"
        fi
    done
}
