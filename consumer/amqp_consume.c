/*
 * consumer/amqp_consume.c — see amqp_consume.h.
 */
#include "amqp_consume.h"
#include "common/amqp_open.h"
#include "common/amqp_reply.h"

#include <amqp_framing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AMQPC_CHANNEL 1
#define AMQPC_RPC_TIMEOUT_MS 5000

int
amqpc_init(struct amqpc *c, const char *url, const char *queue,
           const char *connection_name, int prefetch, struct strbuf *reason)
{
    memset(c, 0, sizeof *c);
    c->queue = strdup(queue);
    c->connection_name = strdup(connection_name);
    c->prefetch = prefetch;
    if (c->queue == NULL || c->connection_name == NULL) {
        sb_puts(reason, "out of memory");
        return -1;
    }
    /* parse once now, so a bad URL stops start-up instead of looping */
    if (amqp_nodes_parse(&c->nodes, url, "FINTEGRATE_AMQP_URL", reason) < 0)
        return -1;
    c->where = c->nodes.n == 1 ? c->nodes.v[0].where : c->nodes.where_all;
    snprintf(c->consumer_tag, sizeof c->consumer_tag, "%s/%ld", connection_name,
             (long)getpid());
    return 0;
}

void
amqpc_free(struct amqpc *c)
{
    amqpc_close(c);
    amqp_nodes_free(&c->nodes);
    free(c->queue);
    free(c->connection_name);
    c->queue = c->connection_name = NULL;
    c->where = NULL;
}

bool
amqpc_is_open(const struct amqpc *c)
{
    return c->conn != NULL;
}

/* One node: connect, log in, channel, prefetch, basic.consume.  0 ok
 * (c->conn set); -1 with the reason (c->conn NULL). */
static int
connect_node(struct amqpc *c, const struct amqp_node *node,
             struct strbuf *reason)
{
    int rc = -1;

    /* connection_name shows in the management UI; consumer_cancel_notify
     * lets the broker tell us when our consumer is cancelled (queue
     * deleted) instead of leaving us waiting */
    amqp_table_entry_t caps[] = {
        {.key = amqp_cstring_bytes("consumer_cancel_notify"),
         .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value = {.boolean = 1}}},
    };
    amqp_table_entry_t props[] = {
        {.key = amqp_cstring_bytes("connection_name"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8,
                   .value = {.bytes = amqp_cstring_bytes(c->connection_name)}}},
        {.key = amqp_cstring_bytes("capabilities"),
         .value = {.kind = AMQP_FIELD_KIND_TABLE,
                   .value = {.table = {1, caps}}}},
    };
    amqp_table_t properties = {2, props};
    const struct amqp_open_opts opts = {
        .timeout_ms = AMQPC_RPC_TIMEOUT_MS,
        .heartbeat_s = AMQPC_HEARTBEAT_S,
        .client_properties = &properties,
        .unreachable = "cannot connect to the broker",
        .where = node->where,
    };

    c->conn = amqp_node_open(node, &opts, AMQPC_CHANNEL, reason);
    if (c->conn == NULL)
        return -1;
    amqp_basic_qos(c->conn, AMQPC_CHANNEL, 0, (uint16_t)c->prefetch, 0);
    if (!amqp_reply_ok(amqp_get_rpc_reply(c->conn), "basic.qos", reason))
        goto out;
    amqp_basic_consume(c->conn, AMQPC_CHANNEL, amqp_cstring_bytes(c->queue),
                       amqp_cstring_bytes(c->consumer_tag), 0, 0, 0,
                       amqp_empty_table);
    if (!amqp_reply_ok(amqp_get_rpc_reply(c->conn), "basic.consume", reason))
        goto out;
    rc = 0;
out:
    if (rc < 0)
        amqpc_drop(c);
    return rc;
}

int
amqpc_connect(struct amqpc *c, struct strbuf *reason)
{
    struct strbuf why = STRBUF_INIT;
    size_t n = c->nodes.n;

    amqpc_drop(c);
    if (n == 0) {
        sb_puts(reason, "FINTEGRATE_AMQP_URL names no broker");
        return -1;
    }
    /* From the node after the one last connected to: after a lost
     * connection, the lost node is tried last. */
    for (size_t i = 0; i < n; i++) {
        size_t k = (c->next + i) % n;
        const struct amqp_node *node = &c->nodes.v[k];
        sb_reset(&why);
        c->where = node->where;
        if (connect_node(c, node, &why) == 0) {
            c->next = (k + 1) % n;
            sb_free(&why);
            return 0;
        }
        if (n == 1)
            sb_puts(reason, sb_str(&why));
        else if (strstr(sb_str(&why), node->where) != NULL)
            sb_printf(reason, "%s%s", i ? "; " : "", sb_str(&why));
        else
            sb_printf(reason, "%s%s: %s", i ? "; " : "", node->where,
                      sb_str(&why));
    }
    if (n > 1)
        c->where = c->nodes.where_all;
    sb_free(&why);
    return -1;
}

static long
field_int(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        return v->value.i8;
    case AMQP_FIELD_KIND_U8:
        return v->value.u8;
    case AMQP_FIELD_KIND_I16:
        return v->value.i16;
    case AMQP_FIELD_KIND_U16:
        return v->value.u16;
    case AMQP_FIELD_KIND_I32:
        return v->value.i32;
    case AMQP_FIELD_KIND_U32:
        return (long)v->value.u32;
    case AMQP_FIELD_KIND_I64:
        return (long)v->value.i64;
    case AMQP_FIELD_KIND_U64:
        return (long)v->value.u64;
    default:
        return 0;
    }
}

static void
fill_delivery(const amqp_envelope_t *env, struct amqpc_delivery *d)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    const amqp_bytes_t *b = &env->message.body;

    d->tag = env->delivery_tag;
    d->redelivered = env->redelivered;
    d->len = b->len;
    d->body = malloc(b->len + 1);
    if (d->body != NULL) {
        if (b->len > 0)
            memcpy(d->body, b->bytes, b->len);
        d->body[b->len] = '\0';
    }
    if ((p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) &&
        p->message_id.len < sizeof d->message_id) {
        memcpy(d->message_id, p->message_id.bytes, p->message_id.len);
        d->message_id[p->message_id.len] = '\0';
    }
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        static const char key[] = "x-delivery-count";
        for (int i = 0; i < p->headers.num_entries; i++) {
            const amqp_table_entry_t *e = &p->headers.entries[i];
            if (e->key.len == sizeof key - 1 &&
                memcmp(e->key.bytes, key, sizeof key - 1) == 0)
                d->delivery_count = field_int(&e->value);
        }
    }
}

/* A frame other than basic.deliver arrived: what it means for us. */
static enum amqpc_event
other_frame(struct amqpc *c, struct strbuf *reason)
{
    amqp_frame_t f;
    int st = amqp_simple_wait_frame(c->conn, &f);
    if (st != AMQP_STATUS_OK) {
        sb_printf(reason, "reading from the broker: %s",
                  amqp_error_string2(st));
        return AMQPC_LOST;
    }
    if (f.frame_type != AMQP_FRAME_METHOD)
        return AMQPC_IDLE;
    switch (f.payload.method.id) {
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *m = f.payload.method.decoded;
        sb_printf(reason, "channel closed by the broker: %d %.*s",
                  m->reply_code, (int)m->reply_text.len,
                  (const char *)m->reply_text.bytes);
        return AMQPC_LOST;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *m = f.payload.method.decoded;
        sb_printf(reason, "connection closed by the broker: %d %.*s",
                  m->reply_code, (int)m->reply_text.len,
                  (const char *)m->reply_text.bytes);
        amqp_connection_close_ok_t ok = {0};
        (void)amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
                               &ok);
        return AMQPC_LOST;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        sb_puts(reason, "the broker cancelled our consumer (was the queue "
                        "deleted?)");
        return AMQPC_LOST;
    default:
        return AMQPC_IDLE;
    }
}

enum amqpc_event
amqpc_next(struct amqpc *c, long timeout_ms, struct amqpc_delivery *d,
           struct strbuf *reason)
{
    amqp_envelope_t env;
    struct timeval tv = amqp_tv_ms(timeout_ms < 0 ? 0 : timeout_ms);

    memset(d, 0, sizeof *d);
    if (c->conn == NULL) {
        sb_puts(reason, "not connected");
        return AMQPC_LOST;
    }
    amqp_maybe_release_buffers(c->conn);
    amqp_rpc_reply_t r = amqp_consume_message(c->conn, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        fill_delivery(&env, d);
        amqp_destroy_envelope(&env);
        if (d->body == NULL) {
            /* cannot hold it: the broker gets it back with the connection */
            sb_puts(reason, "out of memory reading a message");
            amqpc_drop(c);
            return AMQPC_LOST;
        }
        return AMQPC_DELIVERY;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_TIMEOUT)
        return AMQPC_IDLE;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        enum amqpc_event e = other_frame(c, reason);
        if (e == AMQPC_LOST)
            amqpc_drop(c);
        return e;
    }
    amqp_reply_ok(r, "waiting for messages", reason);
    amqpc_drop(c);
    return AMQPC_LOST;
}

void
amqpc_delivery_free(struct amqpc_delivery *d)
{
    free(d->body);
    d->body = NULL;
}

static int
settled(struct amqpc *c, int st)
{
    if (st == AMQP_STATUS_OK)
        return 0;
    amqpc_drop(c);
    return -1;
}

int
amqpc_ack(struct amqpc *c, uint64_t tag)
{
    if (c->conn == NULL)
        return -1;
    return settled(c, amqp_basic_ack(c->conn, AMQPC_CHANNEL, tag, 0));
}

int
amqpc_requeue(struct amqpc *c, uint64_t tag)
{
    if (c->conn == NULL)
        return -1;
    return settled(c, amqp_basic_nack(c->conn, AMQPC_CHANNEL, tag, 0, 1));
}

int
amqpc_reject(struct amqpc *c, uint64_t tag)
{
    if (c->conn == NULL)
        return -1;
    return settled(c, amqp_basic_reject(c->conn, AMQPC_CHANNEL, tag, 0));
}

int
amqpc_cancel(struct amqpc *c)
{
    struct strbuf why = STRBUF_INIT;
    if (c->conn == NULL)
        return -1;
    amqp_basic_cancel(c->conn, AMQPC_CHANNEL,
                      amqp_cstring_bytes(c->consumer_tag));
    bool ok = amqp_reply_ok(amqp_get_rpc_reply(c->conn), "basic.cancel", &why);
    sb_free(&why);
    if (!ok) {
        amqpc_drop(c);
        return -1;
    }
    return 0;
}

void
amqpc_close(struct amqpc *c)
{
    if (c->conn == NULL)
        return;
    /* best effort, bounded by the RPC timeout */
    amqp_channel_close(c->conn, AMQPC_CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
    amqpc_drop(c);
}

void
amqpc_drop(struct amqpc *c)
{
    if (c->conn == NULL)
        return;
    amqp_destroy_connection(c->conn);
    c->conn = NULL;
}
