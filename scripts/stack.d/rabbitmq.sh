# shellcheck shell=bash
# scripts/stack.d/rabbitmq.sh — RabbitMQ 3.10 with the management plugin and
# its own epmd, for scripts/stack.sh (sourced by it); pitfalls 1-11.
# FINTEGRATE_EPMD_SHARED=1 (scripts/cluster.sh): broker-stop leaves the epmd
# the nodes share.

RB_DIR=$RUN/rabbitmq
RB_LOGS=$LOGS/rabbitmq
RB_PID=$RB_DIR/beam.pid
RB_BIN=/usr/lib/rabbitmq/bin

# The CLI tools open distribution ports of their own at dist port + 10000
# (inside the ephemeral range): keep them below 32768.
rb_ctl_port_min() {
    if [ $((FINTEGRATE_AMQP_DIST_PORT + 110)) -lt 32768 ]; then
        echo $((FINTEGRATE_AMQP_DIST_PORT + 100))
    else
        echo $((FINTEGRATE_AMQP_DIST_PORT - 110))
    fi
}

# rb_env_lines — the environment shared by the server and every CLI call.
rb_env_lines() {
    local min
    min=$(rb_ctl_port_min)
    cat <<ENV
HOME=$RB_DIR/home
RABBITMQ_CONF_ENV_FILE=/dev/null
RABBITMQ_MNESIA_BASE=$RB_DIR/mnesia
RABBITMQ_LOG_BASE=$RB_LOGS
RABBITMQ_CONFIG_FILE=$RB_DIR/rabbitmq.conf
RABBITMQ_ADVANCED_CONFIG_FILE=$RB_DIR/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE=$RB_DIR/enabled_plugins
RABBITMQ_PID_FILE=$RB_DIR/rabbit.pid
RABBITMQ_NODENAME=$FINTEGRATE_AMQP_NODENAME
RABBITMQ_USE_LONGNAME=false
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$FINTEGRATE_AMQP_PORT
RABBITMQ_DIST_PORT=$FINTEGRATE_AMQP_DIST_PORT
RABBITMQ_CTL_DIST_PORT_MIN=$min
RABBITMQ_CTL_DIST_PORT_MAX=$((min + 10))
ERL_EPMD_PORT=$FINTEGRATE_EPMD_PORT
ERL_EPMD_ADDRESS=127.0.0.1
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}
ENV
}

rb_export_env() {
    local line
    while IFS= read -r line; do
        export "${line?}"
    done < <(rb_env_lines)
}

rb_pid() { pid_file_is "$RB_PID" "$RB_DIR/home"; }

rb_ready() {
    curl -sf -m 2 -u guest:guest "http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT/api/overview" >/dev/null
}

epmd_up() { epmd -port "$FINTEGRATE_EPMD_PORT" -names >/dev/null 2>&1; }

# rb_prepare — config files, cookie and the rabbitmqctl wrapper.
rb_prepare() {
    local q
    mkdir -p "$RB_DIR/home" "$RB_DIR/mnesia" "$RB_LOGS"
    chmod 0700 "$RB_DIR/home"
    if [ ! -s "$RB_DIR/home/.erlang.cookie" ]; then
        # 15 random bytes = 24 base32 characters, no padding.
        (umask 077 && head -c 15 /dev/urandom | base32 | tr -d '\n' >"$RB_DIR/home/.erlang.cookie")
    fi
    chmod 0400 "$RB_DIR/home/.erlang.cookie"
    cat >"$RB_DIR/rabbitmq.conf" <<CONF
# written by scripts/stack.sh at every broker start — do not edit
listeners.tcp.default = 127.0.0.1:$FINTEGRATE_AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $FINTEGRATE_AMQP_MGMT_PORT
loopback_users.guest = true
log.console = false
log.file.level = info
CONF
    echo '[].' >"$RB_DIR/advanced.config"
    echo '[rabbitmq_management].' >"$RB_DIR/enabled_plugins"
    # The wrapper sets the same environment as the server (pitfall 3).
    {
        echo '#!/bin/sh'
        echo '# rabbitmqctl for this Fintegrate stack (written by scripts/stack.sh)'
        while IFS= read -r q; do
            printf 'export %s=%q\n' "${q%%=*}" "${q#*=}"
        done < <(rb_env_lines)
        echo "exec $RB_BIN/rabbitmqctl \"\$@\""
    } >"$RUN/rabbitmqctl"
    chmod 0755 "$RUN/rabbitmqctl"
}

broker_start() {
    local pid wrapper i
    ensure_run_dir
    already_running rabbitmq "$(rb_pid)" && return 0
    need_free_port rabbitmq "$FINTEGRATE_AMQP_PORT" FINTEGRATE_AMQP_PORT
    need_free_port rabbitmq "$FINTEGRATE_AMQP_MGMT_PORT" FINTEGRATE_AMQP_MGMT_PORT
    need_free_port rabbitmq "$FINTEGRATE_AMQP_DIST_PORT" FINTEGRATE_AMQP_DIST_PORT
    rb_prepare
    rb_export_env
    # Our own epmd on 127.0.0.1 (pitfall 6); one left over from a killed run
    # on this port is reused.
    if ! epmd_up; then
        need_free_port epmd "$FINTEGRATE_EPMD_PORT" FINTEGRATE_EPMD_PORT
        epmd -daemon -relaxed_command_check -port "$FINTEGRATE_EPMD_PORT" -address 127.0.0.1 \
            </dev/null >/dev/null 2>&1
        wait_for epmd 10 "" "" epmd_up || die "epmd: not up on 127.0.0.1:$FINTEGRATE_EPMD_PORT"
    fi
    rm -f "$RB_DIR/rabbit.pid"
    printf '\n=== %s starting %s\n' "$(date -u +%FT%TZ)" "$FINTEGRATE_AMQP_NODENAME" >>"$RB_LOGS/startup.log"
    # The server script stays as a small sh parent (it traps TERM/INT and
    # waits) and runs erl → beam.smp as its child: we keep beam's PID.
    # setsid: its own session, out of reach of the caller's Ctrl-C.
    (cd "$RB_DIR" && exec setsid "$RB_BIN/rabbitmq-server" </dev/null >>"$RB_LOGS/startup.log" 2>&1) &
    wrapper=$!
    pid=""
    for ((i = 0; i < 100; i++)); do
        pid=$(pgrep -P "$wrapper" -x beam.smp || true)
        [ -n "$pid" ] && break
        pid_alive "$wrapper" || break
        sleep 0.1
    done
    if [ -z "$pid" ]; then
        show_log_tail "$RB_LOGS/startup.log"
        die "rabbitmq: beam.smp did not start"
    fi
    # rabbit.pid disappears at the start of shutdown while beam runs on ~5 s:
    # keep our own copy (pitfall 10).
    echo "$pid" >"$RB_PID"
    wait_for rabbitmq "$FINTEGRATE_START_TIMEOUT" "$pid" \
        "$RB_LOGS/startup.log $RB_LOGS/$FINTEGRATE_AMQP_NODENAME.log" rb_ready ||
        die "rabbitmq: management API not answering on 127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT"
    say "rabbitmq: ready on 127.0.0.1:$FINTEGRATE_AMQP_PORT, management on :$FINTEGRATE_AMQP_MGMT_PORT (pid $pid)"
}

broker_stop() {
    stop_service rabbitmq "$(rb_pid)" TERM || true
    rm -f "$RB_PID"
    # The nodes of a cluster (scripts/cluster.sh) share one epmd: the last
    # one's `down` stops it, not a single node's stop.
    if [ "${FINTEGRATE_EPMD_SHARED:-0}" != 1 ] && epmd_up; then
        epmd -port "$FINTEGRATE_EPMD_PORT" -kill >/dev/null 2>&1 || true
    fi
}
