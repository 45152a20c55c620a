/*
 * fcgi-app/mq/amqp_conn.c — see amqp_conn.h.
 */
#include "amqp_conn.h"
#include "amqp_reply.h"

#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MQ_CHANNEL 1

int
mq_conn_init(struct mq_conn *m, const char *url, long timeout_ms)
{
    memset(m, 0, sizeof *m);
    m->url = strdup(url);
    m->timeout_ms = timeout_ms;
    return m->url ? 0 : -1;
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

void
mq_conn_free(struct mq_conn *m)
{
    mq_conn_close(m);
    free(m->url);
    m->url = NULL;
}

bool
mq_conn_is_open(const struct mq_conn *m)
{
    return m->conn != NULL;
}

const char *
mq_result_label(enum mq_result r)
{
    switch (r) {
    case MQ_OK:
        return "ok";
    case MQ_NACK:
        return "nack";
    case MQ_RETURNED:
        return "returned";
    case MQ_TIMEOUT:
        return "timeout";
    case MQ_CONNECTION:
        return "connection";
    }
    return "connection";
}

static struct timeval
tv_ms(long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* Anything readable on an idle connection means the broker is closing it
 * (connection.close at shutdown) or has gone (EOF). */
static bool
is_stale(struct mq_conn *m)
{
    if (amqp_frames_enqueued(m->conn) || amqp_data_in_buffer(m->conn))
        return true;
    struct pollfd pfd = {.fd = amqp_get_sockfd(m->conn), .events = POLLIN};
    if (pfd.fd < 0)
        return true;
    return poll(&pfd, 1, 0) != 0;
}

enum mq_result
mq_conn_open(struct mq_conn *m, struct strbuf *reason)
{
    struct amqp_connection_info info;
    char *url = NULL;
    amqp_socket_t *sock;
    struct timeval tv = tv_ms(m->timeout_ms);

    if (m->conn != NULL) {
        if (!is_stale(m))
            return MQ_OK;
        mq_conn_close(m);
    }
    url = strdup(m->url);
    if (url == NULL || amqp_parse_url(url, &info) != AMQP_STATUS_OK) {
        sb_puts(reason, "FINTEGRATE_AMQP_URL is not a valid amqp:// URL");
        goto fail;
    }
    m->conn = amqp_new_connection();
    if (m->conn == NULL || (sock = amqp_tcp_socket_new(m->conn)) == NULL) {
        sb_puts(reason, "out of memory creating the AMQP connection");
        goto fail;
    }
    int rc = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        sb_printf(reason, "cannot connect to the broker at %s:%d: %s",
                  info.host, info.port, amqp_error_string2(rc));
        goto fail;
    }
    amqp_set_handshake_timeout(m->conn, &tv);
    amqp_set_rpc_timeout(m->conn, &tv);
    /* heartbeat 0: see the header */
    if (!amqp_reply_ok(amqp_login(m->conn, info.vhost, 0, 131072, 0,
                                  AMQP_SASL_METHOD_PLAIN, info.user,
                                  info.password),
                       "login", reason))
        goto fail;
    amqp_channel_open(m->conn, MQ_CHANNEL);
    if (!amqp_reply_ok(amqp_get_rpc_reply(m->conn), "channel.open", reason))
        goto fail;
    amqp_confirm_select(m->conn, MQ_CHANNEL);
    if (!amqp_reply_ok(amqp_get_rpc_reply(m->conn), "confirm.select", reason))
        goto fail;
    free(url);
    m->last_tag = 0;
    m->fresh = true;
    return MQ_OK;
fail:
    free(url);
    if (m->conn != NULL) {
        amqp_destroy_connection(m->conn);
        m->conn = NULL;
    }
    return MQ_CONNECTION;
}

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum confirm_step
confirm_on_frame(struct confirm_wait *w, uint32_t method, uint64_t delivery_tag,
                 bool multiple)
{
    /* RabbitMQ may settle several tags at once (multiple=1): the tag is a
     * watermark, "everything up to here". */
    bool covers =
        delivery_tag == w->tag || (multiple && delivery_tag >= w->tag);
    switch (method) {
    case AMQP_BASIC_ACK_METHOD:
        if (!covers)
            return CONFIRM_PENDING;
        return w->returned ? CONFIRM_RETURNED : CONFIRM_ACKED;
    case AMQP_BASIC_NACK_METHOD:
        return covers ? CONFIRM_NACKED : CONFIRM_PENDING;
    case AMQP_BASIC_RETURN_METHOD:
        w->returned = true; /* the ack still follows */
        return CONFIRM_PENDING;
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        return CONFIRM_CLOSED;
    default:
        return CONFIRM_PENDING;
    }
}

/* Reads frames until the broker settles delivery tag `tag`. */
static enum mq_result
wait_confirm(struct mq_conn *m, uint64_t tag, struct strbuf *reason)
{
    long long deadline = now_ms() + m->timeout_ms;
    struct confirm_wait w = {.tag = tag, .returned = false};

    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            sb_printf(reason, "No publisher confirm within %ld ms",
                      m->timeout_ms);
            return MQ_TIMEOUT;
        }
        struct timeval tv = tv_ms((long)left);
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(m->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        if (rc != AMQP_STATUS_OK) {
            sb_printf(reason,
                      "Broker connection lost waiting for the "
                      "confirm: %s",
                      amqp_error_string2(rc));
            return MQ_CONNECTION;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        uint64_t dtag = 0;
        bool multiple = false;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            dtag = a->delivery_tag;
            multiple = a->multiple;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            amqp_basic_nack_t *n = f.payload.method.decoded;
            dtag = n->delivery_tag;
            multiple = n->multiple;
        } else if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            /* header and body frames follow: read them to stay in sync */
            amqp_message_t msg;
            amqp_rpc_reply_t r = amqp_read_message(m->conn, f.channel, &msg, 0);
            if (r.reply_type != AMQP_RESPONSE_NORMAL) {
                sb_puts(reason, "Broker connection lost reading a returned "
                                "message");
                return MQ_CONNECTION;
            }
            amqp_destroy_message(&msg);
        }
        switch (confirm_on_frame(&w, f.payload.method.id, dtag, multiple)) {
        case CONFIRM_PENDING:
            break;
        case CONFIRM_ACKED:
            return MQ_OK;
        case CONFIRM_RETURNED:
            sb_puts(reason, "Message returned by the broker: no queue is "
                            "bound for its routing key");
            return MQ_RETURNED;
        case CONFIRM_NACKED:
            sb_puts(reason, "Broker refused the message (basic.nack); its "
                            "queue may be full");
            return MQ_NACK;
        case CONFIRM_CLOSED:
            sb_puts(reason, "Broker closed the channel while publishing");
            return MQ_CONNECTION;
        }
    }
}

enum mq_result
mq_conn_publish(struct mq_conn *m, const struct mq_message *msg,
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

    enum mq_result r = mq_conn_open(m, reason);
    if (r != MQ_OK)
        return r;
    int rc = amqp_basic_publish(
        m->conn, MQ_CHANNEL, amqp_cstring_bytes(msg->exchange),
        amqp_cstring_bytes(msg->routing_key), 1, 0, &props, body);
    if (rc != AMQP_STATUS_OK) {
        sb_printf(reason, "Publishing failed: %s", amqp_error_string2(rc));
        mq_conn_close(m);
        return MQ_CONNECTION;
    }
    r = wait_confirm(m, ++m->last_tag, reason);
    if (r == MQ_TIMEOUT || r == MQ_CONNECTION)
        mq_conn_close(m);
    else if (!amqp_frames_enqueued(m->conn) && !amqp_data_in_buffer(m->conn))
        amqp_maybe_release_buffers(m->conn);
    return r;
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

    sb_printf(&queue, MQ_QUEUE_PREFIX "%s", name);
    sb_printf(&dlq, MQ_QUEUE_PREFIX "%s_DLQ", name);
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
