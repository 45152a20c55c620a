/*
 * common/amqp_open.h — opening one AMQP connection to one broker node
 * (librabbitmq 0.11): TCP connect, login, channel.open, each bounded by
 * one timeout.  The service's publisher (fcgi-app/mq/amqp_conn.c) and the
 * consumer program (consumer/amqp_consume.c) both open a node with it and
 * then add what is theirs (confirm.select; basic.qos and basic.consume).
 *
 * Ownership: the connection returned is the caller's
 * (amqp_destroy_connection).  Nothing is logged: the reason goes to the
 * caller, and names no user or password.
 */
#ifndef FI_AMQP_OPEN_H
#define FI_AMQP_OPEN_H

#include "amqp_urls.h"
#include "strbuf.h"

#include <amqp.h>
#include <stdbool.h>

struct amqp_open_opts {
    long timeout_ms;   /* the TCP connect, the whole login, each RPC */
    int heartbeat_s;   /* 0: heartbeats off */
    bool send_timeout; /* a send that blocks that long fails (SO_SNDTIMEO) */
    /* client properties (connection_name, capabilities); NULL: none */
    const amqp_table_t *client_properties;
    /* The reason when the TCP connect fails: "<unreachable>[ at
     * <where>]: <library error>" (where NULL: the node is not named). */
    const char *unreachable;
    const char *where;
};

/* Opens a connection to `node` with channel `channel` open.  Returns it,
 * or NULL with the reason appended to `reason` ("login: …",
 * "channel.open: …", or the unreachable sentence above). */
amqp_connection_state_t amqp_node_open(const struct amqp_node *node,
                                       const struct amqp_open_opts *o,
                                       amqp_channel_t channel,
                                       struct strbuf *reason);

/* A struct timeval of `ms` milliseconds, for librabbitmq's timeouts. */
struct timeval amqp_tv_ms(long ms);

#endif
