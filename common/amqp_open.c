/*
 * common/amqp_open.c — see amqp_open.h.
 */
#include "amqp_open.h"
#include "amqp_reply.h"

#include <amqp_tcp_socket.h>
#include <sys/socket.h>
#include <sys/time.h>

struct timeval
amqp_tv_ms(long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

amqp_connection_state_t
amqp_node_open(const struct amqp_node *node, const struct amqp_open_opts *o,
               amqp_channel_t channel, struct strbuf *reason)
{
    const struct amqp_connection_info *info = &node->info;
    const amqp_table_t *props =
        o->client_properties != NULL ? o->client_properties : &amqp_empty_table;
    struct timeval tv = amqp_tv_ms(o->timeout_ms);
    amqp_connection_state_t conn;
    amqp_socket_t *sock;

    conn = amqp_new_connection();
    if (conn == NULL || (sock = amqp_tcp_socket_new(conn)) == NULL) {
        sb_puts(reason, "out of memory creating the AMQP connection");
        goto fail;
    }
    int rc = amqp_socket_open_noblock(sock, info->host, info->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        sb_printf(reason, "%s%s%s: %s", o->unreachable,
                  o->where != NULL ? " at " : "",
                  o->where != NULL ? o->where : "", amqp_error_string2(rc));
        goto fail;
    }
    if (o->send_timeout)
        setsockopt(amqp_get_sockfd(conn), SOL_SOCKET, SO_SNDTIMEO, &tv,
                   sizeof tv);
    /* The handshake timeout bounds the whole login, so a node that
     * accepts TCP but never answers (a paused broker) costs one timeout
     * and the caller can try the next. */
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);
    if (!amqp_reply_ok(amqp_login_with_properties(
                           conn, info->vhost, 0, 131072, o->heartbeat_s, props,
                           AMQP_SASL_METHOD_PLAIN, info->user, info->password),
                       "login", reason))
        goto fail;
    amqp_channel_open(conn, channel);
    if (!amqp_reply_ok(amqp_get_rpc_reply(conn), "channel.open", reason))
        goto fail;
    return conn;
fail:
    if (conn != NULL)
        amqp_destroy_connection(conn);
    return NULL;
}
