/*
 * tests/integration/test_tenancy.c — customers belong to the consumer whose
 * key created them (docs/API.md §4.3). Two consumers A and B, created in SQL:
 * B gets 404 for A's customer on every endpoint, exactly as for a missing
 * one, and changes nothing; the administrator reads and changes everyone's
 * customers, and the events keep the owner's consumer_id; the
 * administrator's own customers belong to the system consumer.
 */
#include "itest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct itest_consumer g_a, g_b;

static int
setup(void **state)
{
    return itest_group_setup_consumers(state, &g_a, &g_b);
}

static char *
owner_of(const char *customer_id)
{
    return itest_sql_value(
        "SELECT consumer_id::text FROM customers WHERE customer_id = $1",
        customer_id);
}

/* ------------------------------------------------------------------- */

static void
customer_belongs_to_its_creator(void **state)
{
    (void)state;
    char id[37];
    itest_make_customer(g_a.key, "tenant", id);
    char *owner = owner_of(id);
    itest_expect(NULL, owner && strcmp(owner, g_a.id) == 0,
                 "customers.consumer_id must be the creating consumer");
    free(owner);
    struct itest_resp *r = itest_requestf("GET", g_a.key, NULL,
                                          "/customer/data?customer_id=%s", id);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
}

static void
other_consumer_gets_404_everywhere(void **state)
{
    (void)state;
    char x[37], y[37], bx[160], by[160];
    itest_make_customer(g_a.key, "tenant", x);
    itest_random_uuid(y);

    itest_expect_like_missing(
        itest_requestf("GET", g_b.key, NULL, "/customer/data?customer_id=%s",
                       x),
        x,
        itest_requestf("GET", g_b.key, NULL, "/customer/data?customer_id=%s",
                       y),
        y, 404);
    snprintf(bx, sizeof(bx), "{\"customer_id\":\"%s\"}", x);
    snprintf(by, sizeof(by), "{\"customer_id\":\"%s\"}", y);
    itest_expect_like_missing(
        itest_request("GET", "/customer/data", g_b.key, bx, NULL), x,
        itest_request("GET", "/customer/data", g_b.key, by, NULL), y, 404);
    itest_expect_like_missing(
        itest_request("DELETE", "/customer/data", g_b.key, bx, NULL), x,
        itest_request("DELETE", "/customer/data", g_b.key, by, NULL), y, 404);
    itest_expect_like_missing(
        itest_requestf("DELETE", g_b.key, NULL, "/customer/data?customer_id=%s",
                       x),
        x,
        itest_requestf("DELETE", g_b.key, NULL, "/customer/data?customer_id=%s",
                       y),
        y, 404);
    /* INACTIVE would succeed for the owner, ACTIVE would be its 409: for B
     * both are 404, so neither existence nor state leaks. */
    static const char *const statuses[] = {"INACTIVE", "ACTIVE"};
    for (int i = 0; i < 2; i++) {
        snprintf(bx, sizeof(bx), "{\"customer_id\":\"%s\",\"status\":\"%s\"}",
                 x, statuses[i]);
        snprintf(by, sizeof(by), "{\"customer_id\":\"%s\",\"status\":\"%s\"}",
                 y, statuses[i]);
        itest_expect_like_missing(
            itest_request("PATCH", "/customer/change-status", g_b.key, bx,
                          NULL),
            x,
            itest_request("PATCH", "/customer/change-status", g_b.key, by,
                          NULL),
            y, 404);
    }

    /* Nothing B did changed A's customer. */
    struct itest_resp *r = itest_requestf("GET", g_a.key, NULL,
                                          "/customer/data?customer_id=%s", x);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "status", "ACTIVE");
    itest_resp_free(r);
    itest_expect(NULL, itest_count_events(x) == 1,
                 "B's refused calls must write no events (have %ld)",
                 itest_count_events(x));
}

static void
validation_comes_before_ownership(void **state)
{
    (void)state;
    char x[37], body[160];
    itest_make_customer(g_a.key, "tenant", x);
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"japapa\"}", x);
    struct itest_resp *r =
        itest_request("PATCH", "/customer/change-status", g_b.key, body, NULL);
    itest_assert_error(
        r, 422, "status must be one of ACTIVE, INACTIVE (got \"japapa\")");
    itest_resp_free(r);
}

static void
admin_reads_and_changes_any_customer(void **state)
{
    (void)state;
    const char *admin = itest_admin_key();
    char x[37], name[96], body[160];
    itest_unique(name, sizeof(name), "owned-by-a");
    itest_create_customer(g_a.key, name, x);

    struct itest_resp *r =
        itest_requestf("GET", admin, NULL, "/customer/data?customer_id=%s", x);
    json_t *d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "name", name);
    itest_resp_free(r);

    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", x);
    r = itest_request("PATCH", "/customer/change-status", admin, body, NULL);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "previous_status", "ACTIVE");
    char *ev = itest_sql_value(
        "SELECT consumer_id::text FROM customer_events WHERE event_id = $1",
        itest_jstr(d, "event_id"));
    itest_expect(r, ev && strcmp(ev, g_a.id) == 0,
                 "the admin's change must be an event of the owner (%s), "
                 "is %s",
                 g_a.id, ev ? ev : "<no event row>");
    free(ev);
    itest_resp_free(r);

    /* The owner sees the admin's change; ownership did not move. */
    r = itest_requestf("GET", g_a.key, NULL, "/customer/data?customer_id=%s",
                       x);
    d = itest_assert_envelope(r, 200);
    itest_assert_jstr(r, d, "status", "INACTIVE");
    itest_resp_free(r);
    char *owner = owner_of(x);
    itest_expect(NULL, owner && strcmp(owner, g_a.id) == 0,
                 "the admin's change must not change the owner");
    free(owner);

    /* The admin gets the owner's 409 too. */
    char want[160];
    snprintf(want, sizeof(want), "Customer %s is already INACTIVE", x);
    r = itest_request("PATCH", "/customer/change-status", admin, body, NULL);
    itest_assert_error(r, 409, want);
    itest_resp_free(r);

    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", x);
    r = itest_request("DELETE", "/customer/data", admin, body, NULL);
    d = itest_assert_envelope(r, 200);
    ev = itest_sql_value(
        "SELECT consumer_id::text FROM customer_events WHERE event_id = $1",
        itest_jstr(d, "event_id"));
    itest_expect(r, ev && strcmp(ev, g_a.id) == 0,
                 "the admin's delete must be an event of the owner");
    free(ev);
    itest_resp_free(r);

    r = itest_requestf("GET", g_a.key, NULL, "/customer/data?customer_id=%s",
                       x);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "customer_id = $1 AND consumer_id <> $2",
                                x, g_a.id) == 0,
                 "every event of A's customer must carry A's consumer_id");
}

static void
admin_customers_belong_to_the_system_consumer(void **state)
{
    (void)state;
    const char *admin = itest_admin_key();
    char x[37];
    itest_make_customer(admin, "tenant", x);
    char *owner = owner_of(x);
    itest_expect(NULL, owner && strcmp(owner, ITEST_SYSTEM_CONSUMER_ID) == 0,
                 "an admin's customer belongs to the system consumer, not %s",
                 owner ? owner : "<none>");
    free(owner);
    char *ev = itest_sql_value(
        "SELECT consumer_id::text FROM customer_events WHERE customer_id = $1",
        x);
    itest_expect(NULL, ev && strcmp(ev, ITEST_SYSTEM_CONSUMER_ID) == 0,
                 "its creation event belongs to the system consumer");
    free(ev);

    /* Not visible to ordinary consumers. */
    struct itest_resp *r = itest_requestf("GET", g_a.key, NULL,
                                          "/customer/data?customer_id=%s", x);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    char body[160];
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", x);
    r = itest_request("PATCH", "/customer/change-status", g_b.key, body, NULL);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

static void
each_consumer_sees_only_its_own(void **state)
{
    (void)state;
    char xa[37], xb[37];
    itest_make_customer(g_a.key, "tenant", xa);
    itest_make_customer(g_b.key, "tenant", xb);
    struct itest_resp *r;
    r = itest_requestf("GET", g_a.key, NULL, "/customer/data?customer_id=%s",
                       xa);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    r = itest_requestf("GET", g_b.key, NULL, "/customer/data?customer_id=%s",
                       xb);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    r = itest_requestf("GET", g_a.key, NULL, "/customer/data?customer_id=%s",
                       xb);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
    r = itest_requestf("GET", g_b.key, NULL, "/customer/data?customer_id=%s",
                       xa);
    itest_assert_error(r, 404, NULL);
    itest_resp_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(customer_belongs_to_its_creator),
        cmocka_unit_test(other_consumer_gets_404_everywhere),
        cmocka_unit_test(validation_comes_before_ownership),
        cmocka_unit_test(admin_reads_and_changes_any_customer),
        cmocka_unit_test(admin_customers_belong_to_the_system_consumer),
        cmocka_unit_test(each_consumer_sees_only_its_own),
    };
    return itest_exit(cmocka_run_group_tests_name("tenancy", tests, setup,
                                                  itest_group_teardown));
}
