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

/* ---- exact codes ------------------------------------------------------ */

static void
test_conflicts_are_409(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_status("23505"), 409); /* unique */
    assert_int_equal(db_sqlstate_status("23503"), 409); /* foreign key */
}

static void
test_rejected_values_are_422(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_status("22P02"), 422); /* invalid text */
    assert_int_equal(db_sqlstate_status("22007"), 422); /* datetime format */
    assert_int_equal(db_sqlstate_status("22008"), 422); /* datetime overflow */
    assert_int_equal(db_sqlstate_status("22001"), 422); /* too long */
    assert_int_equal(db_sqlstate_status("23514"), 422); /* check */
}

static void
test_retryable_are_503(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_status("40001"), 503); /* serialization */
    assert_int_equal(db_sqlstate_status("40P01"), 503); /* deadlock */
    assert_int_equal(db_sqlstate_status("55P03"), 503); /* lock_timeout */
    assert_int_equal(db_sqlstate_status("57014"), 503); /* statement_timeout */
    assert_int_equal(db_sqlstate_status("25P03"), 503); /* idle in tx */
    assert_int_equal(db_sqlstate_status("57P01"), 503); /* admin shutdown */
    assert_int_equal(db_sqlstate_status("57P02"), 503); /* crash shutdown */
    assert_int_equal(db_sqlstate_status("57P03"), 503); /* cannot connect */
}

/* ---- classes ---------------------------------------------------------- */

static void
test_connection_and_resource_classes_are_503(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_status("08000"), 503);
    assert_int_equal(db_sqlstate_status("08006"), 503); /* failure */
    assert_int_equal(db_sqlstate_status("08P01"), 503); /* protocol */
    assert_int_equal(db_sqlstate_status("53000"), 503);
    assert_int_equal(db_sqlstate_status("53100"), 503); /* disk full */
    assert_int_equal(db_sqlstate_status("53300"), 503); /* connections */
}

/* Only the listed codes of a class count: their neighbours are 500. */
static void
test_neighbours_of_listed_codes_are_500(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_status("23502"), 500); /* not_null */
    assert_int_equal(db_sqlstate_status("23000"), 500);
    assert_int_equal(db_sqlstate_status("22012"), 500); /* division by 0 */
    assert_int_equal(db_sqlstate_status("40000"), 500);
    assert_int_equal(db_sqlstate_status("57000"), 500);
    assert_int_equal(db_sqlstate_status("55000"), 500);
    assert_int_equal(db_sqlstate_status("25P02"), 500); /* in failed tx */
}

static void
test_anything_else_is_500(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_status("42601"), 500); /* syntax */
    assert_int_equal(db_sqlstate_status("42P01"), 500); /* no table */
    assert_int_equal(db_sqlstate_status("XX000"), 500); /* internal */
    assert_int_equal(db_sqlstate_status("P0001"), 500); /* raise */
    assert_int_equal(db_sqlstate_status(""), 500);
    /* a class prefix needs both its characters */
    assert_int_equal(db_sqlstate_status("0"), 500);
    assert_int_equal(db_sqlstate_status("5"), 500);
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
        cmocka_unit_test(test_conflicts_are_409),
        cmocka_unit_test(test_rejected_values_are_422),
        cmocka_unit_test(test_retryable_are_503),
        cmocka_unit_test(test_connection_and_resource_classes_are_503),
        cmocka_unit_test(test_neighbours_of_listed_codes_are_500),
        cmocka_unit_test(test_anything_else_is_500),
        cmocka_unit_test(test_no_sqlstate_is_503),
    };
    return cmocka_run_group_tests_name("db/db: db_sqlstate_status, the "
                                       "SQLSTATE to HTTP status map",
                                       tests, NULL, NULL);
}
