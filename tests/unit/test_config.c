/*
 * tests/unit/test_config.c — core/config.h with an injected getenv: the
 * defaults, every integer bound, log levels, empty URLs, and that every
 * refusal names the variable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "common/log.h"

/* ---- a table-driven fake environment ---------------------------------- */

#define FAKE_MAX 16

static struct {
    const char *name;
    const char *value;
} fake_env[FAKE_MAX];
static size_t fake_n;

static const char *
fake_getenv(const char *name)
{
    for (size_t i = 0; i < fake_n; i++)
        if (strcmp(fake_env[i].name, name) == 0)
            return fake_env[i].value;
    return NULL;
}

static void
fake_set(const char *name, const char *value)
{
    for (size_t i = 0; i < fake_n; i++) {
        if (strcmp(fake_env[i].name, name) == 0) {
            fake_env[i].value = value;
            return;
        }
    }
    assert_true(fake_n < FAKE_MAX);
    fake_env[fake_n].name = name;
    fake_env[fake_n].value = value;
    fake_n++;
}

static int
reset_env(void **state)
{
    (void)state;
    fake_n = 0;
    return 0;
}

/* Loads with the fake environment; returns config_load's result.  The
 * caller frees cfg and err. */
static int
load(struct config *cfg, struct app_err *err)
{
    return config_load(cfg, fake_getenv, err);
}

/* ---- defaults ---------------------------------------------------------- */

static void
test_defaults(void **state)
{
    (void)state;
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(load(&cfg, &err), 0);
    assert_int_equal(err.status, 0);
    assert_null(err.msg);
    assert_string_equal(cfg.db_url, "host=127.0.0.1 port=15432 "
                                    "dbname=fintegrate user=fintegrate");
    assert_string_equal(cfg.amqp_url, "amqp://guest:guest@127.0.0.1:5672");
    assert_int_equal(cfg.workers, 8);
    assert_int_equal(cfg.publish_timeout_ms, 1000);   /* docs/API.md §7.2 */
    assert_int_equal(cfg.breaker_failures, 5);        /* docs/API.md §7.2 */
    assert_int_equal(cfg.breaker_cooldown_ms, 10000); /* docs/API.md §7.2 */
    assert_int_equal(cfg.key_cache_seconds, 2);
    assert_int_equal(cfg.max_requests, 0);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_string_equal(cfg.log_file, "");
    config_free(&cfg);
    err_clear(&err);
}

static void
test_overrides(void **state)
{
    (void)state;
    fake_set("FINTEGRATE_DB_URL", "host=db dbname=x");
    fake_set("FINTEGRATE_AMQP_URL", "amqp://u:p@mq:5672");
    fake_set("FINTEGRATE_WORKERS", "16");
    fake_set("FINTEGRATE_PUBLISH_TIMEOUT_MS", "250");
    fake_set("FINTEGRATE_BREAKER_FAILURES", "3");
    fake_set("FINTEGRATE_BREAKER_COOLDOWN_MS", "500");
    fake_set("FINTEGRATE_KEY_CACHE_SECONDS", "0");
    fake_set("FINTEGRATE_MAX_REQUESTS", "10000");
    fake_set("FINTEGRATE_LOG_LEVEL", "debug");
    fake_set("FINTEGRATE_LOG_FILE", "/tmp/fintegrate.log");

    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.db_url, "host=db dbname=x");
    assert_string_equal(cfg.amqp_url, "amqp://u:p@mq:5672");
    assert_int_equal(cfg.workers, 16);
    assert_int_equal(cfg.publish_timeout_ms, 250);
    assert_int_equal(cfg.breaker_failures, 3);
    assert_int_equal(cfg.breaker_cooldown_ms, 500);
    assert_int_equal(cfg.key_cache_seconds, 0);
    assert_int_equal(cfg.max_requests, 10000);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_string_equal(cfg.log_file, "/tmp/fintegrate.log");
    config_free(&cfg);
    err_clear(&err);
}

/* The strings are copies: the environment may change afterwards. */
static void
test_strings_are_copies(void **state)
{
    (void)state;
    char url[] = "host=copy";
    fake_set("FINTEGRATE_DB_URL", url);
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(load(&cfg, &err), 0);
    assert_ptr_not_equal(cfg.db_url, url);
    url[0] = 'X';
    assert_string_equal(cfg.db_url, "host=copy");
    config_free(&cfg);
    config_free(&cfg); /* twice: fine */
    assert_null(cfg.db_url);
    err_clear(&err);
}

/* ---- integer bounds ---------------------------------------------------- */

static const struct int_row {
    const char *name;
    long min, max;
    size_t offset;
} int_rows[] = {
    {"FINTEGRATE_WORKERS", 1, 256, offsetof(struct config, workers)},
    {"FINTEGRATE_PUBLISH_TIMEOUT_MS", 1, 60000,
     offsetof(struct config, publish_timeout_ms)},
    {"FINTEGRATE_BREAKER_FAILURES", 1, 1000,
     offsetof(struct config, breaker_failures)},
    {"FINTEGRATE_BREAKER_COOLDOWN_MS", 1, 3600000,
     offsetof(struct config, breaker_cooldown_ms)},
    /* docs/API.md §4.1: a deactivated key stops working within 5 s. */
    {"FINTEGRATE_KEY_CACHE_SECONDS", 0, 5,
     offsetof(struct config, key_cache_seconds)},
    {"FINTEGRATE_MAX_REQUESTS", 0, 100000000,
     offsetof(struct config, max_requests)},
};

static long
field_of(const struct config *cfg, size_t offset)
{
    return *(const long *)((const char *)cfg + offset);
}

static void
expect_accepted(const struct int_row *row, long v)
{
    char text[32];
    snprintf(text, sizeof text, "%ld", v);
    fake_n = 0;
    fake_set(row->name, text);
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    if (load(&cfg, &err) != 0)
        fail_msg("%s=%s refused: %s", row->name, text,
                 err.msg ? err.msg : "(no message)");
    assert_int_equal(field_of(&cfg, row->offset), v);
    config_free(&cfg);
    err_clear(&err);
}

static void
expect_refused(const char *name, const char *text)
{
    fake_n = 0;
    fake_set(name, text);
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    if (load(&cfg, &err) != -1)
        fail_msg("%s=\"%s\" accepted", name, text);
    assert_true(err.status >= 500 && err.status <= 599);
    assert_non_null(err.msg);
    if (strstr(err.msg, name) == NULL)
        fail_msg("message for %s=\"%s\" does not name it: %s", name, text,
                 err.msg);
    assert_null(strchr(err.msg, '\n')); /* one line */
    config_free(&cfg);
    err_clear(&err);
}

static void
test_int_bounds(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof int_rows / sizeof int_rows[0]; i++) {
        const struct int_row *row = &int_rows[i];
        char text[32];
        expect_accepted(row, row->min);
        expect_accepted(row, row->max);
        snprintf(text, sizeof text, "%ld", row->min - 1);
        expect_refused(row->name, text);
        snprintf(text, sizeof text, "%ld", row->max + 1);
        expect_refused(row->name, text);
    }
}

static void
test_int_message_names_rule(void **state)
{
    (void)state;
    fake_set("FINTEGRATE_WORKERS", "0");
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(load(&cfg, &err), -1);
    assert_string_equal(err.msg, "FINTEGRATE_WORKERS must be an integer "
                                 "between 1 and 256 (got \"0\")");
    config_free(&cfg);
    err_clear(&err);
}

static void
test_int_not_a_number(void **state)
{
    (void)state;
    const char *bad[] = {"",     "abc", "5x",
                         "x5",   "1.5", "1e3",
                         "0x10", "--1", "99999999999999999999999999"};
    for (size_t i = 0; i < sizeof int_rows / sizeof int_rows[0]; i++)
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
            expect_refused(int_rows[i].name, bad[k]);
}

static void
test_key_cache_max_5(void **state)
{
    (void)state;
    struct int_row row = {"FINTEGRATE_KEY_CACHE_SECONDS", 0, 5,
                          offsetof(struct config, key_cache_seconds)};
    expect_accepted(&row, 5);
    expect_refused("FINTEGRATE_KEY_CACHE_SECONDS", "6");
    expect_refused("FINTEGRATE_KEY_CACHE_SECONDS", "60");
    expect_refused("FINTEGRATE_KEY_CACHE_SECONDS", "-1");
}

/* ---- log level ---------------------------------------------------------- */

static void
test_log_levels(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long level;
    } ok[] = {{"debug", LOG_DEBUG},
              {"info", LOG_INFO},
              {"warn", LOG_WARN},
              {"error", LOG_ERROR}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        fake_n = 0;
        fake_set("FINTEGRATE_LOG_LEVEL", ok[i].text);
        struct config cfg;
        struct app_err err = APP_ERR_INIT;
        assert_int_equal(load(&cfg, &err), 0);
        assert_int_equal(cfg.log_level, ok[i].level);
        config_free(&cfg);
        err_clear(&err);
    }
}

static void
test_bad_log_level(void **state)
{
    (void)state;
    const char *bad[] = {"verbose", "", "INFO", "warning", "info "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused("FINTEGRATE_LOG_LEVEL", bad[i]);

    fake_n = 0;
    fake_set("FINTEGRATE_LOG_LEVEL", "verbose");
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(load(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "debug"));
    assert_non_null(strstr(err.msg, "verbose"));
    config_free(&cfg);
    err_clear(&err);
}

/* ---- strings ----------------------------------------------------------- */

static void
test_empty_db_url_refused(void **state)
{
    (void)state;
    fake_set("FINTEGRATE_DB_URL", "");
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(load(&cfg, &err), -1);
    assert_int_equal(err.status, 500);
    assert_non_null(strstr(err.msg, "FINTEGRATE_DB_URL"));
    config_free(&cfg);
    err_clear(&err);
}

static void
test_empty_amqp_url_refused(void **state)
{
    (void)state;
    expect_refused("FINTEGRATE_AMQP_URL", "");
}

static void
test_empty_log_file_means_stderr(void **state)
{
    (void)state;
    fake_set("FINTEGRATE_LOG_FILE", "");
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.log_file, "");
    config_free(&cfg);
    err_clear(&err);
}

/* One bad variable stops the load; the message names that one. */
static void
test_first_error_reported(void **state)
{
    (void)state;
    fake_set("FINTEGRATE_WORKERS", "zero");
    fake_set("FINTEGRATE_LOG_LEVEL", "loud");
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    assert_int_equal(load(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "FINTEGRATE_WORKERS"));
    assert_null(strstr(err.msg, "FINTEGRATE_LOG_LEVEL"));
    config_free(&cfg);
    err_clear(&err);
}

/* NULL reads the real environment. */
static void
test_real_getenv(void **state)
{
    (void)state;
    assert_int_equal(setenv("FINTEGRATE_WORKERS", "7", 1), 0);
    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    int rc = config_load(&cfg, NULL, &err);
    unsetenv("FINTEGRATE_WORKERS");
    assert_int_equal(rc, 0);
    assert_int_equal(cfg.workers, 7);
    config_free(&cfg);
    err_clear(&err);
}

int
main(void)
{
    /* the real environment must not leak into the fake-env tests, and the
     * NULL-getenv test must see only what it sets */
    static const char *const vars[] = {
        "FINTEGRATE_DB_URL",
        "FINTEGRATE_AMQP_URL",
        "FINTEGRATE_WORKERS",
        "FINTEGRATE_PUBLISH_TIMEOUT_MS",
        "FINTEGRATE_BREAKER_FAILURES",
        "FINTEGRATE_BREAKER_COOLDOWN_MS",
        "FINTEGRATE_KEY_CACHE_SECONDS",
        "FINTEGRATE_MAX_REQUESTS",
        "FINTEGRATE_LOG_LEVEL",
        "FINTEGRATE_LOG_FILE",
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, reset_env),
        cmocka_unit_test_setup(test_overrides, reset_env),
        cmocka_unit_test_setup(test_strings_are_copies, reset_env),
        cmocka_unit_test_setup(test_int_bounds, reset_env),
        cmocka_unit_test_setup(test_int_message_names_rule, reset_env),
        cmocka_unit_test_setup(test_int_not_a_number, reset_env),
        cmocka_unit_test_setup(test_key_cache_max_5, reset_env),
        cmocka_unit_test_setup(test_log_levels, reset_env),
        cmocka_unit_test_setup(test_bad_log_level, reset_env),
        cmocka_unit_test_setup(test_empty_db_url_refused, reset_env),
        cmocka_unit_test_setup(test_empty_amqp_url_refused, reset_env),
        cmocka_unit_test_setup(test_empty_log_file_means_stderr, reset_env),
        cmocka_unit_test_setup(test_first_error_reported, reset_env),
        cmocka_unit_test_setup(test_real_getenv, reset_env),
    };
    return cmocka_run_group_tests_name(
        "core/config: defaults, bounds and refusals (injected getenv)", tests,
        NULL, NULL);
}
