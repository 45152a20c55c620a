/*
 * tests/unit/test_db_sqlstate.c — db/db.c's db_sqlstate_status: the one
 * SQLSTATE → HTTP status map (docs/DECISIONS.md, "Database errors never
 * reach the client as text").  A pure function: no server is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db/db.h"

struct sqlstate_case {
    const char *state;
    int http;
};

static void
check(const struct sqlstate_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int got = db_sqlstate_status(cases[i].state);
        if (got != cases[i].http)
            fail_msg("SQLSTATE \"%s\": got %d, want %d", cases[i].state, got,
                     cases[i].http);
    }
}

#define CHECK(cases) check((cases), sizeof(cases) / sizeof((cases)[0]))

static void
test_exact_codes(void **state)
{
    static const struct sqlstate_case cases[] = {
        {"23505", 409}, /* unique_violation */
        {"23503", 409}, /* foreign_key_violation */
        {"22P02", 422}, /* invalid_text_representation */
        {"22007", 422}, /* invalid_datetime_format */
        {"22008", 422}, /* datetime_field_overflow */
        {"22001", 422}, /* string_data_right_truncation */
        {"23514", 422}, /* check_violation */
        {"40001", 503}, /* serialization_failure */
        {"40P01", 503}, /* deadlock_detected */
        {"55P03", 503}, /* lock_not_available (lock_timeout) */
        {"57014", 503}, /* query_canceled (statement_timeout) */
        {"25P03", 503}, /* idle_in_transaction_session_timeout */
        {"57P01", 503}, /* admin_shutdown */
        {"57P02", 503}, /* crash_shutdown */
        {"57P03", 503}, /* cannot_connect_now */
    };
    (void)state;
    CHECK(cases);
}

static void
test_classes(void **state)
{
    static const struct sqlstate_case cases[] = {
        {"08000", 503}, /* connection_exception */
        {"08006", 503}, /* connection_failure */
        {"08P01", 503}, /* protocol_violation */
        {"53000", 503}, /* insufficient_resources */
        {"53100", 503}, /* disk_full */
        {"53300", 503}, /* too_many_connections */
    };
    (void)state;
    CHECK(cases);
}

/* Only the listed codes of a class count: their neighbours are 500, and so
 * is anything unlisted. */
static void
test_everything_else_is_500(void **state)
{
    static const struct sqlstate_case cases[] = {
        {"23502", 500},             /* not_null_violation */
        {"23000", 500},             /* integrity_constraint_violation */
        {"22012", 500},             /* division_by_zero */
        {"40000", 500},             /* transaction_rollback */
        {"57000", 500},             /* operator_intervention */
        {"55000", 500},             /* object_not_in_prerequisite_state */
        {"25P02", 500},             /* in_failed_sql_transaction */
        {"42601", 500},             /* syntax_error */
        {"42P01", 500},             /* undefined_table */
        {"XX000", 500},             /* internal_error */
        {"P0001", 500},             /* raise_exception */
        {"", 500},      {"0", 500}, /* a class needs both its characters */
        {"5", 500},
    };
    (void)state;
    CHECK(cases);
}

/* No SQLSTATE at all: libpq failed before the server answered. */
static void
test_no_sqlstate_is_503(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_status(NULL), 503);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_codes),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_everything_else_is_500),
        cmocka_unit_test(test_no_sqlstate_is_503),
    };
    return cmocka_run_group_tests_name("db/db: db_sqlstate_status, the "
                                       "SQLSTATE to HTTP status map",
                                       tests, NULL, NULL);
}
