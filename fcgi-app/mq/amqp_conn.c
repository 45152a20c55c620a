/*
 * fcgi-app/mq/amqp_conn.c — see amqp_conn.h.
 */
#include "amqp_conn.h"
#include "common/amqp_open.h"
#include "common/amqp_reply.h"
#include "common/clock.h"
#include "common/log.h"

#include <amqp_framing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define MQ_CHANNEL 1

int
mq_conn_init(struct mq_conn *m, const char *url, long timeout_ms)
{
    struct strbuf err = STRBUF_INIT;

    memset(m, 0, sizeof *m);
    m->timeout_ms = timeout_ms;
    if (amqp_nodes_parse(&m->nodes, url, "FINTEGRATE_AMQP_URL", &err) < 0) {
        /* Not fatal: the service runs, events stay pending with this
         * reason, as with a broker that cannot be reached. */
        log_error("amqp: %s", sb_str(&err));
        m->url_error = sb_steal(&err);
        return m->url_error ? 0 : -1;
    }
    sb_free(&err);
    return 0;
}

void
mq_conn_close(struct mq_conn *m)
{
    if (m->conn == NULL)
        return;
    /* Best effort: a broker that is gone will not answer, and the RPC
     * timeout bounds the wait. */
    amqp_connection_close(m->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(m->conn);
    m->conn = NULL;
    m->last_tag = 0;
}

/* Closes without the close handshake: after a timeout or a broken socket
 * the broker would not answer it, and waiting for that would add a whole
 * RPC timeout to the failure.  The next open starts at the next node. */
static void
mq_conn_drop(struct mq_conn *m, const char *why)
{
    if (m->conn == NULL)
        return;
    log_warn("amqp: dropping the connection to broker node %s: %s",
             m->nodes.v[m->node].where, why);
    amqp_destroy_connection(m->conn);
    m->conn = NULL;
    m->last_tag = 0;
}

void
mq_conn_free(struct mq_conn *m)
{
    mq_conn_close(m);
    amqp_nodes_free(&m->nodes);
    free(m->url_error);
    m->url_error = NULL;
}

bool
mq_conn_is_open(const struct mq_conn *m)
{
    return m->conn != NULL;
}

/* Anything readable on an idle connection means the broker is closing it
 * (connection.close at shutdown) or has gone (EOF).  Never waits. */
static bool
is_stale(const struct mq_conn *m)
{
    if (amqp_frames_enqueued(m->conn) || amqp_data_in_buffer(m->conn))
        return true;
    struct pollfd pfd = {.fd = amqp_get_sockfd(m->conn), .events = POLLIN};
    if (pfd.fd < 0)
        return true;
    return poll(&pfd, 1, 0) != 0;
}

bool
mq_conn_looks_up(const struct mq_conn *m)
{
    return m->conn != NULL && !is_stale(m);
}

/* One node: TCP connect, login, channel, confirm mode, each bounded by the
 * timeout.  0 ok (m->conn set); -1 with the reason (m->conn NULL). */
static int
open_node(struct mq_conn *m, const struct amqp_node *node,
          struct strbuf *reason)
{
    const struct amqp_open_opts opts = {
        .timeout_ms = m->timeout_ms,
        .heartbeat_s = 0, /* see the header */
        /* A broker that stops reading (flow control, a dead host) must
         * not block a publish for ever: sends time out like confirms do. */
        .send_timeout = true,
        /* The reason is stored in the outbox, which consumers read: the
         * broker's address goes to the log only (the caller's). */
        .unreachable = "Cannot connect to the broker",
    };

    m->conn = amqp_node_open(node, &opts, MQ_CHANNEL, reason);
    if (m->conn == NULL)
        return -1;
    amqp_confirm_select(m->conn, MQ_CHANNEL);
    if (!amqp_reply_ok(amqp_get_rpc_reply(m->conn), "confirm.select", reason)) {
        amqp_destroy_connection(m->conn);
        m->conn = NULL;
        return -1;
    }
    return 0;
}

enum mq_result
mq_conn_open(struct mq_conn *m, struct strbuf *reason)
{
    struct strbuf why = STRBUF_INIT;
    size_t n = m->nodes.n;

    if (m->conn != NULL) {
        if (!is_stale(m))
            return MQ_OK;
        log_warn("amqp: the connection to broker node %s is gone; "
                 "reconnecting",
                 m->nodes.v[m->node].where);
        mq_conn_close(m);
    }
    if (m->url_error != NULL) {
        sb_puts(reason, m->url_error);
        return MQ_CONNECTION;
    }
    /* From the node after the one last connected to: a node whose
     * connection was just lost is tried last. */
    for (size_t i = 0; i < n; i++) {
        size_t k = (m->next + i) % n;
        sb_reset(&why);
        if (open_node(m, &m->nodes.v[k], &why) == 0) {
            m->node = k;
            m->next = (k + 1) % n;
            m->last_tag = 0;
            m->fresh = true;
            if (n > 1)
                log_info("amqp: connected to broker node %s (%zu of %zu)",
                         m->nodes.v[k].where, k + 1, n);
            sb_free(&why);
            return MQ_OK;
        }
        log_warn("amqp: broker node %s: %s", m->nodes.v[k].where, sb_str(&why));
    }
    if (n > 1)
        sb_printf(reason, "No broker node answered (%zu tried); the last: %s",
                  n, sb_str(&why));
    else
        sb_puts(reason, sb_str(&why));
    sb_free(&why);
    return MQ_CONNECTION;
}

/* Reads the message a basic.return carries (header and body frames follow
 * the method: read them to stay in sync) and copies its message_id. */
static int
read_returned(struct mq_conn *m, amqp_channel_t channel, char *id, size_t size)
{
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(m->conn, channel, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    id[0] = '\0';
    if (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
        size_t n = msg.properties.message_id.len;
        if (n >= size)
            n = size - 1;
        memcpy(id, msg.properties.message_id.bytes, n);
        id[n] = '\0';
    }
    amqp_destroy_message(&msg);
    return 0;
}

enum mq_result
mq_conn_settle(struct mq_conn *m, struct mq_slot *slots, size_t n,
               struct strbuf *reason)
{
    struct confirm_batch b;
    confirm_batch_init(&b, slots, n, m->last_tag + 1 - n);
    if (n == 0)
        return MQ_OK;
    if (m->conn == NULL) {
        confirm_batch_settle_rest(&b, MQ_CONNECTION);
        sb_puts(reason, "Broker connection lost before the confirms");
        return MQ_CONNECTION;
    }
    /* The timeout counts from the last sign of progress, so a large batch
     * is not failed for taking longer than one message would. */
    long long deadline = mono_ms() + m->timeout_ms;
    enum mq_result fail = MQ_OK;

    while (b.left > 0) {
        long long left = deadline - mono_ms();
        if (left <= 0) {
            sb_printf(reason, "No publisher confirm within %ld ms",
                      m->timeout_ms);
            fail = MQ_TIMEOUT;
            break;
        }
        struct timeval tv = amqp_tv_ms((long)left);
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(m->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        if (rc != AMQP_STATUS_OK) {
            sb_printf(reason, "Broker connection lost waiting for the "
                              "confirm");
            fail = MQ_CONNECTION;
            break;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        uint64_t dtag = 0;
        bool multiple = false;
        char returned_id[128];
        const char *rid = NULL;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            dtag = a->delivery_tag;
            multiple = a->multiple;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            amqp_basic_nack_t *nk = f.payload.method.decoded;
            dtag = nk->delivery_tag;
            multiple = nk->multiple;
        } else if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            if (read_returned(m, f.channel, returned_id, sizeof returned_id) <
                0) {
                sb_puts(reason, "Broker connection lost reading a returned "
                                "message");
                fail = MQ_CONNECTION;
                break;
            }
            rid = returned_id;
        }
        size_t before = b.left;
        enum confirm_step st = confirm_batch_on_frame(&b, f.payload.method.id,
                                                      dtag, multiple, rid);
        if (st == CONFIRM_CLOSED) {
            sb_puts(reason, "Broker closed the channel while publishing");
            fail = MQ_CONNECTION;
            break;
        }
        if (b.left < before)
            deadline = mono_ms() + m->timeout_ms;
    }
    if (fail != MQ_OK) {
        confirm_batch_settle_rest(&b, fail);
        mq_conn_drop(m, sb_str(reason));
        return fail;
    }
    if (!amqp_frames_enqueued(m->conn) && !amqp_data_in_buffer(m->conn))
        amqp_maybe_release_buffers(m->conn);
    return MQ_OK;
}

enum mq_result
mq_conn_send(struct mq_conn *m, const struct mq_message *msg,
             struct strbuf *reason)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                   AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                   AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                   AMQP_BASIC_APP_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2; /* persistent */
    props.message_id = amqp_cstring_bytes(msg->message_id);
    props.type = amqp_cstring_bytes(msg->type);
    props.timestamp = msg->timestamp;
    props.app_id = amqp_cstring_bytes("fintegrate");
    if (msg->correlation_id != NULL && msg->correlation_id[0] != '\0') {
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props.correlation_id = amqp_cstring_bytes(msg->correlation_id);
    }
    amqp_bytes_t body = {.len = msg->body_len, .bytes = (void *)msg->body};

    if (m->conn == NULL) {
        sb_puts(reason, "Broker connection lost before publishing");
        return MQ_CONNECTION;
    }
    int rc = amqp_basic_publish(
        m->conn, MQ_CHANNEL, amqp_cstring_bytes(msg->exchange),
        amqp_cstring_bytes(msg->routing_key), 1, 0, &props, body);
    if (rc != AMQP_STATUS_OK) {
        sb_printf(reason, "Publishing failed: %s", amqp_error_string2(rc));
        mq_conn_drop(m, sb_str(reason));
        return MQ_CONNECTION;
    }
    m->last_tag++;
    return MQ_OK;
}

int
mq_conn_declare_exchanges(struct mq_conn *m, struct strbuf *reason)
{
    static const char *const names[] = {MQ_EXCHANGE_EVENTS, MQ_EXCHANGE_DLX};
    static const char *const types[] = {"topic", "direct"};
    for (size_t i = 0; i < 2; i++) {
        amqp_exchange_declare(m->conn, MQ_CHANNEL, amqp_cstring_bytes(names[i]),
                              amqp_cstring_bytes(types[i]), 0, 1, 0, 0,
                              amqp_empty_table);
        if (!amqp_reply_ok(amqp_get_rpc_reply(m->conn), "exchange.declare",
                           reason)) {
            mq_conn_close(m);
            return -1;
        }
    }
    return 0;
}

static amqp_table_entry_t
entry_str(const char *key, const char *value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

static amqp_table_entry_t
entry_long(const char *key, int64_t value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = value;
    return e;
}

static amqp_table_entry_t
entry_bool(const char *key, bool value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e.value.value.boolean = value;
    return e;
}

static int
declare_queue(struct mq_conn *m, const char *queue, amqp_table_t args,
              const char *exchange, const char *binding, struct strbuf *reason)
{
    amqp_queue_declare(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), 0, 1, 0,
                       0, args);
    if (!amqp_reply_ok(amqp_get_rpc_reply(m->conn), "queue.declare", reason))
        return -1;
    amqp_queue_bind(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue),
                    amqp_cstring_bytes(exchange), amqp_cstring_bytes(binding),
                    amqp_empty_table);
    if (!amqp_reply_ok(amqp_get_rpc_reply(m->conn), "queue.bind", reason))
        return -1;
    return 0;
}

int
mq_conn_declare_consumer(struct mq_conn *m, const char *name,
                         struct strbuf *reason)
{
    struct strbuf queue = STRBUF_INIT, dlq = STRBUF_INIT, binding = STRBUF_INIT;
    int rc = -1;

    mq_queue_name(&queue, name, false);
    mq_queue_name(&dlq, name, true);
    sb_printf(&binding, "%s.#", name);
    if (queue.oom || dlq.oom || binding.oom) {
        sb_puts(reason, "out of memory declaring a queue");
        goto out;
    }

    amqp_table_entry_t main_args[] = {
        entry_str("x-queue-type", "quorum"),
        entry_str("x-dead-letter-exchange", MQ_EXCHANGE_DLX),
        entry_str("x-dead-letter-routing-key", name),
        entry_long("x-delivery-limit", MQ_DELIVERY_LIMIT),
        entry_bool("x-single-active-consumer", true),
        entry_str("x-dead-letter-strategy", "at-least-once"),
        entry_str("x-overflow", "reject-publish"),
        entry_long("x-max-length", MQ_MAX_LENGTH),
    };
    amqp_table_entry_t dlq_args[] = {
        entry_str("x-queue-type", "quorum"),
    };
    amqp_table_t t_main = {sizeof main_args / sizeof main_args[0], main_args};
    amqp_table_t t_dlq = {1, dlq_args};

    if (declare_queue(m, sb_str(&queue), t_main, MQ_EXCHANGE_EVENTS,
                      sb_str(&binding), reason) < 0 ||
        declare_queue(m, sb_str(&dlq), t_dlq, MQ_EXCHANGE_DLX, name, reason) <
            0)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        mq_conn_close(m); /* the channel is closed after a failed declare */
    sb_free(&queue);
    sb_free(&dlq);
    sb_free(&binding);
    return rc;
}
