/*
 * tests/unit/test_amqp_urls.c — common/amqp_urls.h, FINTEGRATE_AMQP_URL as a
 * comma-separated list of broker nodes (docs/API.md §7.7): one
 * node, three nodes in the order given, blanks around items, librabbitmq's
 * defaults, IPv6 hosts, percent-encoded passwords; refused: an empty list,
 * empty items (stray commas), items that are no amqp:// URL, amqps://,
 * blanks inside an item, a bad port — each with one sentence naming the
 * variable and the item's position and never the password.  And the
 * publisher's connection (mq/amqp_conn.h) with a list that does not parse:
 * it still initialises (the service runs, as with a broker it cannot
 * reach), and every open fails at once, without a packet, with that
 * sentence; nothing is open, so /health reads "down".  Nodes that refuse
 * the connection: the reason (stored as publish_failure_reason) names no
 * host, address or port (docs/API.md §7.1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "mq/amqp_conn.h"
#include "common/amqp_urls.h"

#define LABEL "FINTEGRATE_AMQP_URL"
#define SECRET "s3cr3t-Pa55"

static void
assert_node(const struct amqp_node *n, const char *user, const char *password,
            const char *host, int port, const char *vhost, const char *where)
{
    assert_string_equal(n->info.user, user);
    assert_string_equal(n->info.password, password);
    assert_string_equal(n->info.host, host);
    assert_int_equal(n->info.port, port);
    assert_string_equal(n->info.vhost, vhost);
    assert_string_equal(n->where, where);
}

/* Parses list, expects a refusal; returns the message (owned by err). */
static const char *
refused(const char *list, struct strbuf *err)
{
    struct amqp_nodes nodes;
    assert_int_equal(amqp_nodes_parse(&nodes, list, LABEL, err), -1);
    assert_int_equal(nodes.n, 0);
    assert_null(nodes.v);
    amqp_nodes_free(&nodes); /* harmless */
    const char *msg = sb_str(err);
    assert_non_null(strstr(msg, LABEL));
    assert_null(strstr(msg, SECRET));
    assert_null(strstr(msg, "guest"));
    return msg;
}

static void
test_one_node(void **state)
{
    (void)state;
    struct amqp_nodes nodes;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(
        amqp_nodes_parse(&nodes, "amqp://app:" SECRET "@10.0.0.1:5673/prod",
                         LABEL, &err),
        0);
    assert_int_equal(nodes.n, 1);
    assert_node(&nodes.v[0], "app", SECRET, "10.0.0.1", 5673, "prod",
                "10.0.0.1:5673");
    assert_string_equal(nodes.where_all, "10.0.0.1:5673");
    assert_null(strstr(nodes.where_all, SECRET));
    assert_string_equal(sb_str(&err), "");
    amqp_nodes_free(&nodes);
    amqp_nodes_free(&nodes); /* twice is safe */
    sb_free(&err);
}

static void
test_three_nodes_in_order(void **state)
{
    (void)state;
    struct amqp_nodes nodes;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(amqp_nodes_parse(&nodes,
                                      "amqp://u:" SECRET "@127.0.0.1:5672,"
                                      "amqp://u:" SECRET "@127.0.0.1:5673,"
                                      "amqp://v:w@rabbit-3.example:5674",
                                      LABEL, &err),
                     0);
    assert_int_equal(nodes.n, 3);
    assert_node(&nodes.v[0], "u", SECRET, "127.0.0.1", 5672, "/",
                "127.0.0.1:5672");
    assert_node(&nodes.v[1], "u", SECRET, "127.0.0.1", 5673, "/",
                "127.0.0.1:5673");
    assert_node(&nodes.v[2], "v", "w", "rabbit-3.example", 5674, "/",
                "rabbit-3.example:5674");
    assert_string_equal(nodes.where_all, "127.0.0.1:5672, 127.0.0.1:5673, "
                                         "rabbit-3.example:5674");
    amqp_nodes_free(&nodes);
    sb_free(&err);
}

static void
test_blanks_around_items_are_ignored(void **state)
{
    (void)state;
    struct amqp_nodes nodes;
    struct strbuf err = STRBUF_INIT;
    assert_int_equal(amqp_nodes_parse(&nodes,
                                      "  amqp://a:b@h1:1 ,\tamqp://a:b@h2:2\n"
                                      " , amqp://a:b@h3 ",
                                      LABEL, &err),
                     0);
    assert_int_equal(nodes.n, 3);
    assert_node(&nodes.v[0], "a", "b", "h1", 1, "/", "h1:1");
    assert_node(&nodes.v[1], "a", "b", "h2", 2, "/", "h2:2");
    assert_node(&nodes.v[2], "a", "b", "h3", 5672, "/", "h3:5672");
    amqp_nodes_free(&nodes);
    sb_free(&err);
}

static void
test_defaults_ipv6_and_encoded_password(void **state)
{
    (void)state;
    struct amqp_nodes nodes;
    struct strbuf err = STRBUF_INIT;
    /* librabbitmq's defaults; a bracketed IPv6 host; %2C is a comma in the
     * password, not a separator */
    assert_int_equal(amqp_nodes_parse(&nodes,
                                      "amqp://localhost,amqp://[::1]:5673,"
                                      "amqp://u:p%2Cq@h/%2f",
                                      LABEL, &err),
                     0);
    assert_int_equal(nodes.n, 3);
    assert_node(&nodes.v[0], "guest", "guest", "localhost", 5672, "/",
                "localhost:5672");
    assert_node(&nodes.v[1], "guest", "guest", "::1", 5673, "/", "[::1]:5673");
    assert_node(&nodes.v[2], "u", "p,q", "h", 5672, "/", "h:5672");
    amqp_nodes_free(&nodes);
    sb_free(&err);
}

static void
test_empty_list(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    const char *msg = refused("", &err);
    assert_non_null(strstr(msg, "is empty"));
    assert_null(strstr(msg, "item"));
    sb_reset(&err);
    msg = refused("   ", &err);
    assert_non_null(strstr(msg, "is empty"));
    sb_reset(&err);
    struct amqp_nodes nodes;
    assert_int_equal(amqp_nodes_parse(&nodes, NULL, LABEL, &err), -1);
    sb_free(&err);
}

static void
test_empty_items_name_their_position(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    const char *msg =
        refused("amqp://u:" SECRET "@h1,,amqp://u:" SECRET "@h3", &err);
    assert_string_equal(msg, LABEL " item 2 of 3 is empty (a stray comma?)");
    sb_reset(&err);
    msg = refused("amqp://u:" SECRET "@h1,", &err);
    assert_string_equal(msg, LABEL " item 2 of 2 is empty (a stray comma?)");
    sb_reset(&err);
    msg = refused(" , amqp://u:" SECRET "@h1", &err);
    assert_string_equal(msg, LABEL " item 1 of 2 is empty (a stray comma?)");
    sb_free(&err);
}

static void
test_bad_urls_name_their_position_never_the_password(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    const char *msg;

    msg = refused("amqp://u:" SECRET "@h1,http://u:" SECRET "@h2", &err);
    assert_non_null(strstr(msg, LABEL " item 2 of 2 does not start with "
                                      "amqp://"));
    sb_reset(&err);
    msg = refused("amqps://u:" SECRET "@h1:5671", &err);
    assert_non_null(strstr(msg, LABEL " is an amqps:// URL"));
    sb_reset(&err);
    /* not a port */
    msg = refused("amqp://u:" SECRET "@h1:56x2,amqp://h2", &err);
    assert_non_null(strstr(msg, LABEL " item 1 of 2 is not a valid amqp://"));
    sb_reset(&err);
    msg = refused("amqp://h1,amqp://u:" SECRET "@h2:99999", &err);
    assert_non_null(strstr(msg, LABEL " item 2 of 2 is not a valid"));
    sb_reset(&err);
    msg = refused("amqp://u:" SECRET "@h1:0", &err);
    assert_non_null(strstr(msg, LABEL " has a port outside 1-65535"));
    sb_reset(&err);
    /* a vhost with a second slash, a bad percent-encoding */
    msg = refused("amqp://u:" SECRET "@h1/a/b", &err);
    assert_non_null(strstr(msg, "is not a valid"));
    sb_reset(&err);
    msg = refused("amqp://u:" SECRET "%zz@h1", &err);
    assert_non_null(strstr(msg, "is not a valid"));
    sb_reset(&err);
    /* a blank inside an item (a forgotten comma) */
    msg = refused("amqp://u:" SECRET "@h1 amqp://u:" SECRET "@h2", &err);
    assert_non_null(strstr(msg, LABEL " holds a blank"));
    sb_reset(&err);
    /* the label is the caller's (a flag) */
    struct amqp_nodes nodes;
    assert_int_equal(amqp_nodes_parse(&nodes, "amqp://h,x", "--amqp-url", &err),
                     -1);
    assert_string_equal(sb_str(&err),
                        "--amqp-url item 2 of 2 does not start with amqp:// "
                        "(expected amqp://[user[:password]@]host[:port]"
                        "[/vhost])");
    sb_free(&err);
}

static void
test_publisher_with_a_bad_list_fails_every_open_without_the_network(
    void **state)
{
    (void)state;
    struct mq_conn m;
    struct strbuf reason = STRBUF_INIT;
    assert_int_equal(
        mq_conn_init(&m, "amqp://u:" SECRET "@h1,,amqp://u:" SECRET "@h3",
                     1000),
        0);
    assert_false(mq_conn_is_open(&m));
    assert_false(mq_conn_looks_up(&m));
    for (int i = 0; i < 2; i++) {
        sb_reset(&reason);
        assert_int_equal(mq_conn_open(&m, &reason), MQ_CONNECTION);
        assert_string_equal(sb_str(&reason),
                            LABEL " item 2 of 3 is empty (a stray comma?)");
        assert_false(mq_conn_is_open(&m));
    }
    mq_conn_free(&m);

    /* a good list parses at init and opens nothing yet (lazily, after
     * fork) */
    assert_int_equal(mq_conn_init(&m, "amqp://h1:5672, amqp://h2:5673", 1000),
                     0);
    assert_null(m.url_error);
    assert_int_equal(m.nodes.n, 2);
    assert_int_equal(m.next, 0);
    assert_false(mq_conn_looks_up(&m));
    mq_conn_free(&m);
    mq_conn_free(&m); /* twice is safe */
    sb_free(&reason);
}

/* A TCP socket bound on 127.0.0.1 and not listening: connecting to its
 * port is refused at once.  Returns the socket, its port in *port. */
static int
refusing_port(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* docs/API.md §7.1: publish_failure_reason (what mq_conn_open's reason
 * becomes in the outbox, which consumers read) never names a host, an
 * address or a port; the log has them. */
static void
test_unreachable_nodes_reason_names_no_host_or_port(void **state)
{
    (void)state;
    int p1, p2;
    int s1 = refusing_port(&p1), s2 = refusing_port(&p2);
    char url[160], n1[16], n2[16];
    snprintf(url, sizeof url,
             "amqp://u:" SECRET "@127.0.0.1:%d,amqp://u:" SECRET
             "@localhost:%d",
             p1, p2);
    snprintf(n1, sizeof n1, "%d", p1);
    snprintf(n2, sizeof n2, "%d", p2);
    struct mq_conn m;
    struct strbuf reason = STRBUF_INIT;
    assert_int_equal(mq_conn_init(&m, url, 1000), 0);
    assert_int_equal(mq_conn_open(&m, &reason), MQ_CONNECTION);
    const char *r = sb_str(&reason);
    assert_true(reason.len > 0);
    static const char *const leaks[] = {"127.0.0.1", "localhost", SECRET,
                                        "amqp://", "@"};
    for (size_t i = 0; i < sizeof leaks / sizeof leaks[0]; i++)
        if (strstr(r, leaks[i]) != NULL)
            fail_msg("the reason names %s: %s", leaks[i], r);
    if (strstr(r, n1) != NULL || strstr(r, n2) != NULL)
        fail_msg("the reason names a port (%s, %s): %s", n1, n2, r);
    mq_conn_free(&m);
    sb_free(&reason);
    close(s1);
    close(s2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_node),
        cmocka_unit_test(test_three_nodes_in_order),
        cmocka_unit_test(test_blanks_around_items_are_ignored),
        cmocka_unit_test(test_defaults_ipv6_and_encoded_password),
        cmocka_unit_test(test_empty_list),
        cmocka_unit_test(test_empty_items_name_their_position),
        cmocka_unit_test(test_bad_urls_name_their_position_never_the_password),
        cmocka_unit_test(
            test_publisher_with_a_bad_list_fails_every_open_without_the_network),
        cmocka_unit_test(test_unreachable_nodes_reason_names_no_host_or_port),
    };
    return cmocka_run_group_tests_name("amqp_urls", tests, NULL, NULL);
}
