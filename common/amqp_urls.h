/*
 * common/amqp_urls.h — FINTEGRATE_AMQP_URL as a list of the nodes of
 * one RabbitMQ cluster: "amqp://u:p@h1:5672,amqp://u:p@h2:5672,...".
 *
 * Items are separated by commas; blanks around an item are ignored.  Each
 * item is one URL that librabbitmq's amqp_parse_url() accepts
 * (amqp://[user[:password]@]host[:port][/vhost]); a comma inside a user
 * name or password is written %2C.  An empty item (a stray comma), an
 * item that is not such a URL, an amqps:// item (this client speaks plain
 * TCP only) or one with blanks inside is refused with one sentence naming
 * the variable and the item's position — never the item itself, which may
 * hold a password.
 *
 * Shared by the service's publisher (mq/amqp_conn.c) and the consumer
 * program (consumer/amqp_consume.c), which both try the nodes in turn.
 * A pure function of its input: no network, no logging.  Depends on
 * librabbitmq's URL parser and common/strbuf only.
 *
 * Ownership: struct amqp_nodes owns everything it points to
 * (amqp_nodes_free, safe to call twice; it wipes the copies that hold a
 * password).  A node's `info` strings point into its own `buf` (or at
 * librabbitmq's static defaults) and live as long as the list.
 */
#ifndef FI_AMQP_URLS_H
#define FI_AMQP_URLS_H

#include "strbuf.h"

#include <amqp.h>
#include <stddef.h>

struct amqp_node {
    char *buf;  /* owned: the item, parsed in place (holds the password) */
    size_t len; /* bytes of buf, wiped at free */
    struct amqp_connection_info info; /* host, port, vhost, user, password */
    char *where;                      /* owned: "host:port", for logs */
};

struct amqp_nodes {
    struct amqp_node *v; /* owned, n of them, in the order given */
    size_t n;
    char *where_all; /* owned: "h1:p1, h2:p2", for logs */
};

/*
 * Parses `list` into *out (n >= 1 on success).  `label` names the setting
 * in messages ("FINTEGRATE_AMQP_URL", or the flag that gave it).  0 ok;
 * -1 with one sentence appended to `err` (*out is then empty, nothing to
 * free — freeing it anyway is harmless).
 */
int amqp_nodes_parse(struct amqp_nodes *out, const char *list,
                     const char *label, struct strbuf *err)
    __attribute__((warn_unused_result));

void amqp_nodes_free(struct amqp_nodes *nodes);

#endif
