/*
 * tests/unit/test_router.c — http/router.h: router_match over a local table
 * and over the service's routes[] (found / 404 / 405 with Allow in table
 * order), and sanity of the route table itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <string.h>

#include "handlers/handler.h"
#include "http/router.h"

static int
h_dummy(struct ctx *c, json_t **data, struct app_err *err)
{
    (void)c;
    (void)data;
    (void)err;
    return 200;
}

static int
h_other(struct ctx *c, json_t **data, struct app_err *err)
{
    (void)c;
    (void)data;
    (void)err;
    return 201;
}

static const struct route local[] = {
    {"GET", "/a", h_dummy, 0, NULL},
    {"POST", "/a", h_other, 0, NULL},
    {"DELETE", "/a", h_dummy, 0, NULL},
    {"GET", "/b", h_dummy, ROUTE_PUBLIC, NULL},
    {"PATCH", "/a/b", h_dummy, 0, NULL},
    {"DELETE", "/c", h_dummy, 0, NULL},
    {"GET", "/c", h_dummy, 0, NULL},
};
static const size_t local_n = sizeof local / sizeof local[0];

/* Runs router_match and checks the outcome; `want_allow` is the expected
 * Allow text for ROUTER_BAD_METHOD. */
static void
expect_match(const struct route *table, size_t n, const char *method,
             const char *path, enum router_result want,
             const struct route *want_route, const char *want_allow)
{
    struct strbuf allow = STRBUF_INIT;
    const struct route *r = (const struct route *)&allow; /* not NULL */
    enum router_result got = router_match(table, n, method, path, &r, &allow);
    if (got != want)
        fail_msg("%s %s: result %d, expected %d", method, path, (int)got,
                 (int)want);
    switch (want) {
    case ROUTER_FOUND:
        assert_ptr_equal(r, want_route);
        break;
    case ROUTER_NOT_FOUND:
        assert_null(r);
        assert_string_equal(sb_str(&allow), "");
        break;
    case ROUTER_BAD_METHOD:
        assert_null(r);
        assert_string_equal(sb_str(&allow), want_allow);
        break;
    }
    sb_free(&allow);
}

/* ---- local table --------------------------------------------------------- */

static void
test_local_found(void **state)
{
    (void)state;
    expect_match(local, local_n, "GET", "/a", ROUTER_FOUND, &local[0], NULL);
    expect_match(local, local_n, "POST", "/a", ROUTER_FOUND, &local[1], NULL);
    expect_match(local, local_n, "DELETE", "/a", ROUTER_FOUND, &local[2], NULL);
    expect_match(local, local_n, "GET", "/b", ROUTER_FOUND, &local[3], NULL);
    expect_match(local, local_n, "PATCH", "/a/b", ROUTER_FOUND, &local[4],
                 NULL);
    expect_match(local, local_n, "GET", "/c", ROUTER_FOUND, &local[6], NULL);
}

static void
test_local_not_found(void **state)
{
    (void)state;
    const char *paths[] = {"/zzz", "",    "/",     "/A",  "/a/",
                           "/a//", "//a", "/a/b/", "/b/", "/a?x=1",
                           "/ab",  "a",   "/a/c"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        expect_match(local, local_n, "GET", paths[i], ROUTER_NOT_FOUND, NULL,
                     NULL);
    /* an unknown path is 404 whatever the method */
    expect_match(local, local_n, "PUT", "/zzz", ROUTER_NOT_FOUND, NULL, NULL);
    expect_match(local, local_n, "", "/zzz", ROUTER_NOT_FOUND, NULL, NULL);
}

static void
test_local_bad_method_allow_in_table_order(void **state)
{
    (void)state;
    expect_match(local, local_n, "PUT", "/a", ROUTER_BAD_METHOD, NULL,
                 "GET, POST, DELETE");
    expect_match(local, local_n, "PATCH", "/a", ROUTER_BAD_METHOD, NULL,
                 "GET, POST, DELETE");
    expect_match(local, local_n, "POST", "/b", ROUTER_BAD_METHOD, NULL, "GET");
    expect_match(local, local_n, "GET", "/a/b", ROUTER_BAD_METHOD, NULL,
                 "PATCH");
    /* table order, not alphabetical or GET-first */
    expect_match(local, local_n, "POST", "/c", ROUTER_BAD_METHOD, NULL,
                 "DELETE, GET");
    /* methods are case-sensitive */
    expect_match(local, local_n, "get", "/a", ROUTER_BAD_METHOD, NULL,
                 "GET, POST, DELETE");
    expect_match(local, local_n, "", "/b", ROUTER_BAD_METHOD, NULL, "GET");
}

static void
test_trailing_slash_is_another_path(void **state)
{
    (void)state;
    expect_match(local, local_n, "GET", "/a/", ROUTER_NOT_FOUND, NULL, NULL);
    expect_match(local, local_n, "PATCH", "/a/b/", ROUTER_NOT_FOUND, NULL,
                 NULL);
    expect_match(routes, routes_count, "GET", "/health/", ROUTER_NOT_FOUND,
                 NULL, NULL);
    expect_match(routes, routes_count, "POST", "/customer/data/",
                 ROUTER_NOT_FOUND, NULL, NULL);
}

static void
test_only_first_n_rows(void **state)
{
    (void)state;
    expect_match(local, 0, "GET", "/a", ROUTER_NOT_FOUND, NULL, NULL);
    expect_match(local, 1, "POST", "/a", ROUTER_BAD_METHOD, NULL, "GET");
    expect_match(local, 2, "DELETE", "/a", ROUTER_BAD_METHOD, NULL,
                 "GET, POST");
    expect_match(local, 3, "GET", "/b", ROUTER_NOT_FOUND, NULL, NULL);
}

/* ---- the service's table ------------------------------------------------ */

static void
test_routes_known_endpoints(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        route_handler handler;
    } want[] = {
        {"GET", "/health", health_get},
        {"POST", "/customer/data", customers_create},
        {"GET", "/customer/data", customers_get},
        {"DELETE", "/customer/data", customers_delete},
        {"PATCH", "/customer/change-status", customers_change_status},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct strbuf allow = STRBUF_INIT;
        const struct route *r = NULL;
        assert_int_equal(router_match(routes, routes_count, want[i].method,
                                      want[i].path, &r, &allow),
                         ROUTER_FOUND);
        assert_non_null(r);
        assert_string_equal(r->method, want[i].method);
        assert_string_equal(r->path, want[i].path);
        assert_ptr_equal(r->handler, want[i].handler);
        sb_free(&allow);
    }
}

static void
test_routes_flags(void **state)
{
    (void)state;
    struct strbuf allow = STRBUF_INIT;
    const struct route *r = NULL;
    assert_int_equal(
        router_match(routes, routes_count, "GET", "/health", &r, &allow),
        ROUTER_FOUND);
    assert_true(r->flags & ROUTE_PUBLIC);
    assert_true(r->flags & ROUTE_NO_INPUT);
    assert_false(r->flags & ROUTE_ADMIN);

    /* customer endpoints need a key, any consumer */
    const char *m[] = {"POST", "GET", "DELETE"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(router_match(routes, routes_count, m[i],
                                      "/customer/data", &r, &allow),
                         ROUTER_FOUND);
        assert_false(r->flags & ROUTE_PUBLIC);
        assert_false(r->flags & ROUTE_ADMIN);
        assert_non_null(r->fields);
    }
    sb_free(&allow);
}

/* Every row is found by its own method and path, i.e. no row is shadowed
 * by an earlier duplicate. */
static void
test_routes_every_row_reachable(void **state)
{
    (void)state;
    for (size_t i = 0; i < routes_count; i++)
        expect_match(routes, routes_count, routes[i].method, routes[i].path,
                     ROUTER_FOUND, &routes[i], NULL);
}

/* For every path of the table, a method it does not have gives 405 and the
 * Allow list is that path's methods in table order. */
static void
test_routes_bad_method_allow(void **state)
{
    (void)state;
    for (size_t i = 0; i < routes_count; i++) {
        struct strbuf want = STRBUF_INIT;
        for (size_t k = 0; k < routes_count; k++) {
            if (strcmp(routes[k].path, routes[i].path) != 0)
                continue;
            if (want.len > 0)
                sb_puts(&want, ", ");
            sb_puts(&want, routes[k].method);
        }
        expect_match(routes, routes_count, "TRACE", routes[i].path,
                     ROUTER_BAD_METHOD, NULL, sb_str(&want));
        expect_match(routes, routes_count, "PROPFIND", routes[i].path,
                     ROUTER_BAD_METHOD, NULL, sb_str(&want));
        sb_free(&want);
    }
    expect_match(routes, routes_count, "POST", "/health", ROUTER_BAD_METHOD,
                 NULL, "GET");
    expect_match(routes, routes_count, "GET", "/customer/change-status",
                 ROUTER_BAD_METHOD, NULL, "PATCH");
}

static void
test_routes_unknown_paths(void **state)
{
    (void)state;
    const char *paths[] = {"/",
                           "",
                           "/customer",
                           "/customer/",
                           "/Customer/data",
                           "/customer/DATA",
                           "/customer/data/x",
                           "/healthz",
                           "/HEALTH",
                           "/customer/data?customer_id=x",
                           "/customer//data"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        expect_match(routes, routes_count, "GET", paths[i], ROUTER_NOT_FOUND,
                     NULL, NULL);
        expect_match(routes, routes_count, "POST", paths[i], ROUTER_NOT_FOUND,
                     NULL, NULL);
    }
}

/* router_error: the 404/405 sentences; bytes that are not UTF-8 text and
 * control characters are %-escaped (docs/API.md §3.3). */
static void
expect_error(enum router_result res, const char *method, const char *path,
             const char *allow, int want_status, const char *want_msg)
{
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(router_error(res, method, path, allow, &err), want_status);
    assert_int_equal(err.status, want_status);
    assert_string_equal(err.msg, want_msg);
    err_clear(&err);
}

static void
test_router_error_sentences(void **state)
{
    (void)state;
    expect_error(ROUTER_NOT_FOUND, "GET", "/nope", "", 404,
                 "No endpoint /nope");
    expect_error(ROUTER_NOT_FOUND, "GET", "/\xFF", "", 404, "No endpoint /%FF");
    expect_error(ROUTER_NOT_FOUND, "GET", "/caf\xC3\xA9/\xC3", "", 404,
                 "No endpoint /caf\xC3\xA9/%C3");
    expect_error(ROUTER_NOT_FOUND, "GET", "/a\nb\x7F\xED\xA0\x80", "", 404,
                 "No endpoint /a%0Ab%7F%ED%A0%80");
    expect_error(ROUTER_NOT_FOUND, "GET", "/\xC2\x85\xC2\xA0", "", 404,
                 "No endpoint /%C2%85\xC2\xA0");
    expect_error(ROUTER_BAD_METHOD, "PUT\x01", "/customer/data",
                 "GET, POST, DELETE", 405,
                 "Method PUT%01 is not allowed on /customer/data (allowed: "
                 "GET, POST, DELETE)");
}

static bool
is_snake_case(const char *s)
{
    if (!islower((unsigned char)s[0]))
        return false;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) ||
              *s == '_'))
            return false;
    return true;
}

/* The table is data; check it is well-formed data. */
static void
test_routes_table_well_formed(void **state)
{
    (void)state;
    static const char *const methods[] = {"GET",    "POST", "PATCH",
                                          "DELETE", "PUT",  NULL};
    assert_true(routes_count > 0);
    for (size_t i = 0; i < routes_count; i++) {
        const struct route *r = &routes[i];
        bool known = false;
        for (size_t k = 0; methods[k]; k++)
            known = known || strcmp(r->method, methods[k]) == 0;
        assert_true(known);
        assert_int_equal(r->path[0], '/');
        assert_true(strlen(r->path) == 1 ||
                    r->path[strlen(r->path) - 1] != '/');
        assert_non_null(r->handler);
        if (r->flags & ROUTE_NO_INPUT)
            assert_null(r->fields);
        for (const struct field_spec *f = r->fields; f && f->name; f++) {
            if (!is_snake_case(f->name))
                fail_msg("%s %s: field \"%s\" is not snake_case", r->method,
                         r->path, f->name);
            if (f->type == FT_ENUM || f->type == FT_ENUM_ARRAY)
                assert_non_null(f->choices);
            if (f->type == FT_STRING || f->type == FT_NAME || f->type == FT_INT)
                assert_true(f->min <= f->max);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_found),
        cmocka_unit_test(test_local_not_found),
        cmocka_unit_test(test_local_bad_method_allow_in_table_order),
        cmocka_unit_test(test_trailing_slash_is_another_path),
        cmocka_unit_test(test_only_first_n_rows),
        cmocka_unit_test(test_routes_known_endpoints),
        cmocka_unit_test(test_routes_flags),
        cmocka_unit_test(test_routes_every_row_reachable),
        cmocka_unit_test(test_routes_bad_method_allow),
        cmocka_unit_test(test_routes_unknown_paths),
        cmocka_unit_test(test_router_error_sentences),
        cmocka_unit_test(test_routes_table_well_formed),
    };
    return cmocka_run_group_tests_name(
        "http/router: 404 vs 405 with Allow, and the route table", tests, NULL,
        NULL);
}
