/*
 * common/amqp_reply.c — see amqp_reply.h.
 */
#include "amqp_reply.h"

#include <amqp_framing.h>

bool
amqp_reply_ok(amqp_rpc_reply_t r, const char *what, struct strbuf *reason)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return true;
    case AMQP_RESPONSE_NONE:
        sb_printf(reason, "%s: missing RPC reply", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        sb_printf(reason, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *c = r.reply.decoded;
            sb_printf(reason, "%s: connection closed by the broker: %d %.*s",
                      what, c->reply_code, (int)c->reply_text.len,
                      (const char *)c->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *c = r.reply.decoded;
            sb_printf(reason, "%s: channel closed by the broker: %d %.*s", what,
                      c->reply_code, (int)c->reply_text.len,
                      (const char *)c->reply_text.bytes);
        } else {
            sb_printf(reason, "%s: broker error (method 0x%08x)", what,
                      (unsigned)r.reply.id);
        }
        break;
    }
    return false;
}
