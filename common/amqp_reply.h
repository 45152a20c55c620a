/*
 * common/amqp_reply.h — turning a librabbitmq RPC reply into one
 * sentence.  Shared by the service's publisher and the consumer program.
 */
#ifndef FI_AMQP_REPLY_H
#define FI_AMQP_REPLY_H

#include "strbuf.h"

#include <amqp.h>
#include <stdbool.h>

/* True for a normal reply.  Otherwise appends "<what>: <why>" to `reason`
 * (library error, or the broker's close code and text) and returns false. */
bool amqp_reply_ok(amqp_rpc_reply_t r, const char *what, struct strbuf *reason);

#endif
