/*
 * tests/integration/itest.h — shared helpers for the integration suite.
 *
 * Every integration test binary talks to a running stack (nginx → FastCGI
 * workers → PostgreSQL) through these helpers: HTTP requests with libcurl,
 * envelope checks (docs/API.md §3.1), direct SQL through libpq, consumers and
 * keys created straight in SQL, and process helpers for the FastCGI pool.
 *
 * The stack is named by the environment (the same variables the stack
 * scripts take):
 *   FINTEGRATE_BASE_URL       e.g. http://127.0.0.1:18080   (required)
 *   FINTEGRATE_DB_URL         a libpq conninfo               (required)
 *   FINTEGRATE_ADMIN_API_KEY  the administrator's key        (required)
 *   FINTEGRATE_RUN_DIR        run directory (fcgi.pid lives there)
 *   FINTEGRATE_CHECKOUT       repository root (scripts/stack.sh)
 *
 * Assertions are cmocka failures (they longjmp out of the test); on failure
 * they print the request, the status, the X-Request-ID and the body, so a
 * failing line says what the service answered.
 *
 * Depends on cmocka, libcurl, libpq and jansson; nothing from fcgi-app/.
 */
#ifndef ITEST_H
#define ITEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

/* The administrator (docs/API.md §4.2). */
#define ITEST_SYSTEM_CONSUMER_ID "00000000-0000-0000-0000-000000000001"

/* ---------------------------------------------------------------- setup */

/*
 * Reads the environment and initialises libcurl and jansson. Returns 0, or -1
 * after printing which variable is missing. Call once from main (or a group
 * setup) before anything else; safe to call twice.
 */
int itest_init(void);

/* Borrowed, valid for the life of the process; NULL when unset. */
const char *itest_env(const char *name);
/* An integer setting from the environment: dflt when unset, not a whole
 * number, or below min. */
long itest_env_long(const char *name, long dflt, long min);
const char *itest_admin_key(void);
const char *itest_base_url(void);

/*
 * Ends main: returns failures (cmocka's count) for `return itest_exit(...)`.
 * When an assertion has failed, what the aborted test had allocated is
 * lost by design (cmocka longjmps out of it), so the process ends with
 * _exit and LeakSanitizer reports nothing that would distract from the
 * failure; a clean run still gets the full leak check.
 */
int itest_exit(int failures);

/* Group setup/teardown usable directly in cmocka_run_group_tests. */
int itest_group_setup(void **state);
int itest_group_teardown(void **state);

/* --------------------------------------------------------------- HTTP */

struct itest_header_line {
    char *name;  /* owned */
    char *value; /* owned, leading/trailing blanks stripped */
};

struct itest_resp {
    long status; /* HTTP status; 0 when the request itself failed */
    char *body;  /* owned, NUL-terminated (may contain NULs) */
    size_t body_len;
    json_t *json; /* owned; NULL when the body is not a JSON object/array */
    struct itest_header_line *headers; /* owned, final response only */
    size_t n_headers;
    double elapsed;  /* seconds, as measured by libcurl */
    char error[512]; /* libcurl's error when status == 0 */
    char *method;    /* owned copy of the request, for messages */
    char *target;
};

/*
 * Sends one request to FINTEGRATE_BASE_URL + path_and_query.
 * api_key NULL sends no X-API-Key header. body NULL sends no body (POST and
 * PATCH then send an empty one, Content-Length: 0); a body is sent with
 * Content-Type: application/json unless extra_headers names a Content-Type.
 * extra_headers: NULL, or one or more "Name: value" lines separated by '\n'
 * (curl syntax: "Name;" sends an empty header, "Name:" removes one).
 * Returns an owned response (never NULL); free with itest_resp_free.
 * Thread-safe: each thread uses its own connection cache.
 */
struct itest_resp *itest_request(const char *method, const char *path_and_query,
                                 const char *api_key, const char *body,
                                 const char *extra_header);

/* Same, with an explicit body length (bodies with NUL or odd bytes). */
struct itest_resp *itest_request_n(const char *method,
                                   const char *path_and_query,
                                   const char *api_key, const char *body,
                                   size_t body_len, const char *extra_header);

/*
 * Sends raw bytes to the host and port of FINTEGRATE_BASE_URL (http only)
 * and reads until the server closes or timeout_ms passes: for requests
 * libcurl will not send (a malformed request line, conflicting framing).
 * The response is parsed into the same owned struct (status 0 when nothing
 * parseable came back); what stands for the request in messages is label.
 */
struct itest_resp *itest_raw_request(const char *bytes, size_t len,
                                     const char *label, long timeout_ms);

/* printf-style path; same ownership as itest_request. */
struct itest_resp *itest_requestf(const char *method, const char *api_key,
                                  const char *body, const char *path_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Releases the calling thread's connection cache; call at the end of every
 * thread that made requests (the group teardown does it for the main one). */
void itest_thread_done(void);

/* Per-thread request timeout in milliseconds (default 15000). */
void itest_set_timeout_ms(long ms);

void itest_resp_free(struct itest_resp *resp);

/* Case-insensitive header lookup; borrowed value or NULL. */
const char *itest_header(const struct itest_resp *resp, const char *name);

/* ------------------------------------------------------- JSON helpers */

/* Borrowed members; NULL when absent or of another type. */
json_t *itest_data(const struct itest_resp *resp);
const char *itest_desc(const struct itest_resp *resp);
const char *itest_jstr(const json_t *obj, const char *key);

/* obj[key] as an integer; -1 when absent or not an integer. */
long itest_jint(const json_t *obj, const char *key);

/* Owned JSON text (free()) of a jansson value built by json_pack. Steals v. */
char *itest_json_text(json_t *v);

/* ----------------------------------------------------------- checkers */

bool itest_is_uuid(const char *s);       /* canonical 8-4-4-4-12, lower-case */
bool itest_is_timestamp(const char *s);  /* 2025-10-23T14:34:51.467162Z */
bool itest_is_request_id(const char *s); /* 1-128 of [A-Za-z0-9._:-] */

/* ---------------------------------------------------------- assertions */

/*
 * Asserts that resp is the envelope of docs/API.md §3.1 with HTTP status
 * expected_status: a JSON object with exactly "data" (object) and "detail"
 * {status_code (string == HTTP status), status_name (the §1.1 name),
 * status_description ("Success" on 2xx, else a non-empty sentence without
 * SQL or library text)}, data == {} on errors, Content-Type application/json,
 * an X-Request-ID header. Returns the borrowed data object.
 */
#define itest_assert_envelope(resp, expected_status)                           \
    itest_assert_envelope_at(__FILE__, __LINE__, (resp), (expected_status))

/* Envelope with an error status; description equal to exact_desc (if set). */
#define itest_assert_error(resp, expected_status, exact_desc)                  \
    itest_assert_error_at(__FILE__, __LINE__, (resp), (expected_status),       \
                          (exact_desc), NULL)

/* Envelope with an error status; description contains needle (if set). */
#define itest_assert_error_contains(resp, expected_status, needle)             \
    itest_assert_error_at(__FILE__, __LINE__, (resp), (expected_status), NULL, \
                          (needle))

/* A condition about a response; on failure prints the message and response. */
#define itest_expect(resp, cond, ...)                                          \
    itest_expect_at(__FILE__, __LINE__, (resp), (cond), __VA_ARGS__)

/* The object has exactly these keys (NULL-terminated list). */
#define itest_assert_keys(resp, obj, ...)                                      \
    itest_assert_keys_at(__FILE__, __LINE__, (resp), (obj), __VA_ARGS__, NULL)

/* obj[key] is a string equal to expected. */
#define itest_assert_jstr(resp, obj, key, expected)                            \
    itest_assert_jstr_at(__FILE__, __LINE__, (resp), (obj), (key), (expected))

/* Fails the test with a message (no response). */
#define itest_failf(...) itest_failf_at(__FILE__, __LINE__, __VA_ARGS__)

json_t *itest_assert_envelope_at(const char *file, int line,
                                 const struct itest_resp *resp,
                                 long expected_status);
void itest_assert_error_at(const char *file, int line,
                           const struct itest_resp *resp, long expected_status,
                           const char *exact_desc, const char *needle);
void itest_expect_at(const char *file, int line, const struct itest_resp *resp,
                     bool cond, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void itest_assert_keys_at(const char *file, int line,
                          const struct itest_resp *resp, const json_t *obj,
                          ...);
void itest_assert_jstr_at(const char *file, int line,
                          const struct itest_resp *resp, const json_t *obj,
                          const char *key, const char *expected);
void itest_failf_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Prints a response (request line, status, headers, body) to stderr. */
void itest_dump(const struct itest_resp *resp);

/*
 * The description of resp with every occurrence of id1 and of id2 (either
 * may be NULL or "") replaced by "<id>": an owned string (free()).
 */
char *itest_desc_without(const struct itest_resp *resp, const char *id1,
                         const char *id2);

/*
 * Tenancy: another consumer's answer about a thing x (foreign) equals the
 * answer about a missing y (missing): both the envelope with status and,
 * for an error status, the same description once x and y are replaced by
 * "<id>". Takes ownership of both responses and frees them.
 */
#define itest_expect_like_missing(foreign, x, missing, y, status)              \
    itest_expect_like_missing_at(__FILE__, __LINE__, (foreign), (x),           \
                                 (missing), (y), (status))
void itest_expect_like_missing_at(const char *file, int line,
                                  struct itest_resp *foreign, const char *x,
                                  struct itest_resp *missing, const char *y,
                                  long status);

/*
 * A 500 envelope caused by a test trigger (itest_sql_ddl): its description
 * must name neither "poison" nor "trigger", i.e. the database's message
 * does not reach the client. Does not free resp.
 */
#define itest_assert_internal_error(resp)                                      \
    itest_assert_internal_error_at(__FILE__, __LINE__, (resp))
void itest_assert_internal_error_at(const char *file, int line,
                                    const struct itest_resp *resp);

/* -------------------------------------------------------- domain helpers */

/*
 * POST /customer/data with {"name": name} as api_key; asserts the 201
 * envelope and copies the new customer_id (lower-case, 36 characters and the
 * NUL) into id_out.
 */
#define itest_create_customer(api_key, name, id_out)                           \
    itest_create_customer_at(__FILE__, __LINE__, (api_key), (name), (id_out))
void itest_create_customer_at(const char *file, int line, const char *api_key,
                              const char *name, char id_out[37]);

/* itest_create_customer with a name made by itest_unique(prefix). */
#define itest_make_customer(api_key, prefix, id_out)                           \
    itest_make_customer_at(__FILE__, __LINE__, (api_key), (prefix), (id_out))
void itest_make_customer_at(const char *file, int line, const char *api_key,
                            const char *prefix, char id_out[37]);

/* itest_make_customer that also copies the new customer's event_id (the
 * customer_creation event) into event_out. */
#define itest_make_customer_event(api_key, prefix, id_out, event_out)          \
    itest_make_customer_event_at(__FILE__, __LINE__, (api_key), (prefix),      \
                                 (id_out), (event_out))
void itest_make_customer_event_at(const char *file, int line,
                                  const char *api_key, const char *prefix,
                                  char id_out[37], char event_out[37]);

/*
 * GET /customer/data?customer_id=id with api_key; id NULL asks for a fresh
 * random (missing) customer on every call, a request that needs nothing but
 * a working key (404 once the key and consumer pass). Returns an owned
 * response (itest_resp_free); asserts nothing.
 */
struct itest_resp *itest_get_customer(const char *api_key, const char *id);

/*
 * Uses a key a dozen times (itest_get_customer(api_key, id)) so that the
 * workers cache its lookup; asserts each answer: 200, or 404 for id NULL.
 */
#define itest_warm_up(api_key, id)                                             \
    itest_warm_up_at(__FILE__, __LINE__, (api_key), (id))
void itest_warm_up_at(const char *file, int line, const char *api_key,
                      const char *id);

/*
 * Polls itest_get_customer(api_key, id) until 8 answers in a row have
 * status (an error: with the exact description desc, when set); fails when
 * an answer is neither was_status nor status, or when the old answer is
 * still given more than 5 s after t0 (docs/API.md §4.1: a deactivated key or
 * consumer stops working within 5 s). Returns the seconds from t0 to the
 * first answer of the final streak.
 */
#define itest_await_answer(api_key, id, t0, was_status, status, desc)          \
    itest_await_answer_at(__FILE__, __LINE__, (api_key), (id), (t0),           \
                          (was_status), (status), (desc))
double itest_await_answer_at(const char *file, int line, const char *api_key,
                             const char *id, double t0, long was_status,
                             long status, const char *desc);

/* A name unique to this run and call: "<prefix>-<pid>-<time>-<n>". */
void itest_unique(char *buf, size_t size, const char *prefix);

/* A fresh random UUID (lower-case) into out[37]. */
void itest_random_uuid(char out[37]);

/* Upper-cases an ASCII string in place; returns it. */
char *itest_upper(char *s);

/* unit repeated times times: an owned string (free()). */
char *itest_repeat(const char *unit, int times);

/* tmpl with every "@ID@" replaced by id, into out (truncated to size). */
void itest_fill_id(char *out, size_t size, const char *tmpl, const char *id);

/*
 * The whole content of a file as an owned, NUL-terminated string (free()),
 * its length into *len_out unless len_out is NULL; NULL when it cannot be
 * opened.
 */
char *itest_slurp(const char *path, size_t *len_out);

/* Sleeps ms milliseconds. */
void itest_sleep_ms(long ms);

/* --------------------------------------------------------------- SQL */

/*
 * Runs a parameterised query on the test's own connection (opened lazily,
 * re-opened when it broke, e.g. after a PostgreSQL restart) and asserts that
 * it succeeded. Parameters are text (NULL pointer = SQL NULL).
 * Returns an owned PGresult (PQclear).
 */
#define itest_sql(query, ...)                                                  \
    itest_sql_at(__FILE__, __LINE__, (query),                                  \
                 (const char *const[]){__VA_ARGS__},                           \
                 (int)(sizeof((const char *const[]){__VA_ARGS__}) /            \
                       sizeof(const char *)))
#define itest_sql0(query) itest_sql_at(__FILE__, __LINE__, (query), NULL, 0)

/* First column of the first row as an owned string (free()), NULL if none. */
#define itest_sql_value(query, ...)                                            \
    itest_sql_value_at(__FILE__, __LINE__, (query),                            \
                       (const char *const[]){__VA_ARGS__},                     \
                       (int)(sizeof((const char *const[]){__VA_ARGS__}) /      \
                             sizeof(const char *)))

/* First column of the first row parsed as an integer (e.g. count(*)). */
#define itest_sql_long(query, ...)                                             \
    itest_sql_long_at(__FILE__, __LINE__, (query),                             \
                      (const char *const[]){__VA_ARGS__},                      \
                      (int)(sizeof((const char *const[]){__VA_ARGS__}) /       \
                            sizeof(const char *)))
#define itest_sql_long0(query)                                                 \
    itest_sql_long_at(__FILE__, __LINE__, (query), NULL, 0)

PGresult *itest_sql_at(const char *file, int line, const char *query,
                       const char *const *params, int nparams);
char *itest_sql_value_at(const char *file, int line, const char *query,
                         const char *const *params, int nparams);
long itest_sql_long_at(const char *file, int line, const char *query,
                       const char *const *params, int nparams);

/*
 * Like itest_sql but does not assert: returns the result (owned, may be an
 * error result) or NULL when no connection could be made.
 */
PGresult *itest_sql_try(const char *query, const char *const *params,
                        int nparams);

/*
 * Runs n DDL statements in order (installing a test-only trigger, say) and
 * asserts that each succeeded; when the test role may not create them
 * (SQLSTATE 42501) the test is skipped instead.
 */
#define itest_sql_ddl(stmts, n)                                                \
    itest_sql_ddl_at(__FILE__, __LINE__, (stmts), (n))
void itest_sql_ddl_at(const char *file, int line, const char *const *stmts,
                      size_t n);

/* Runs n statements in order, ignoring any failure (clean-up: DROP ... IF
 * EXISTS). */
void itest_sql_try_each(const char *const *stmts, size_t n);

/* customer_events rows of a customer (count(*)); asserts the query ran. */
#define itest_count_events(customer_id)                                        \
    itest_sql_long(                                                            \
        "SELECT count(*) FROM customer_events WHERE customer_id = $1",         \
        (customer_id))

/* Customers, of any owner, whose name starts with prefix (count(*)). */
#define itest_count_named(prefix)                                              \
    itest_sql_long("SELECT count(*) FROM customers "                           \
                   "WHERE left(name, length($1)) = $1",                        \
                   (prefix))

/* SHA-256 hex of a key as the service stores it (computed by SQL) into
 * out ("" when the query gave nothing); asserts the query ran. */
#define itest_key_hash(key, out)                                               \
    itest_key_hash_at(__FILE__, __LINE__, (key), (out))
void itest_key_hash_at(const char *file, int line, const char *key,
                       char out[65]);

/* ---------------------------------------------------------- consumers */

struct itest_consumer {
    char id[37];
    char name[64];
    char key[64]; /* "fk_" + 43 base64url characters */
};

/*
 * Creates a consumer and one API key straight in SQL (the consumer API does
 * not exist yet): consumer_status "ACTIVE"/"DEACTIVATED", key_status
 * "active"/"expired"/"deactivated", expires_in a PostgreSQL interval such as
 * "1 day" or "-1 hour". The key is stored as its SHA-256 hex and an 11-char
 * prefix, as the service stores them. Asserts on failure.
 */
#define itest_consumer_create(out, consumer_status, key_status, expires_in)    \
    itest_consumer_create_at(__FILE__, __LINE__, (out), (consumer_status),     \
                             (key_status), (expires_in))
void itest_consumer_create_at(const char *file, int line,
                              struct itest_consumer *out,
                              const char *consumer_status,
                              const char *key_status, const char *expires_in);

/*
 * Group setup: itest_group_setup, then a (and b, unless NULL) made with
 * itest_consumer_create(…, "ACTIVE", "active", "1 day"). Returns 0, or -1
 * when itest_group_setup failed; a failing insert is asserted.
 */
int itest_group_setup_consumers(void **state, struct itest_consumer *a,
                                struct itest_consumer *b);

/* A random key in the service's format that no consumer has. */
void itest_random_key(char out[64]);

/* ----------------------------------------------------- FastCGI processes */

/* The master's pid from $FINTEGRATE_RUN_DIR/fcgi.pid, or -1. */
pid_t itest_master_pid(void);

/* Live (non-zombie) children of parent; returns how many (≤ max). */
int itest_children(pid_t parent, pid_t *out, int max);

/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...), 0 if gone. */
char itest_proc_state(pid_t pid);

/* Monotonic seconds. */
double itest_now(void);

/*
 * Runs "$FINTEGRATE_CHECKOUT/scripts/stack.sh <verb>" with the inherited
 * environment; its output goes to stderr. Returns the exit status (or -1).
 */
int itest_stack(const char *verb);

/* ------------------------------------------------- processes, files */

/*
 * Restarts the FastCGI pool: scripts/stack.sh app-stop, then app-start
 * (which waits until GET /health answers through nginx). The pool inherits
 * this process's environment, so setenv/unsetenv of a FINTEGRATE_* setting
 * before the call starts it with that setting. Returns 0, or -1 after
 * printing which step failed.
 */
int itest_app_restart(void);

/*
 * On SIGTERM or SIGINT (the suite's timeout, Ctrl-C) runs `/bin/sh -c
 * command` and then exits 128 + the signal: a binary that changed the
 * stack (a stopped broker, a pool started with another setting) puts it
 * back even when it is stopped from outside. command is copied; NULL
 * removes the handler's command (the signal then just exits).
 */
void itest_on_signal_run(const char *command);

/*
 * itest_on_signal_run of `before` (NULL: nothing; e.g. what
 * itest_sh_env_cmd built) followed by scripts/stack.sh app-stop and
 * app-start: a binary that restarted the pool with another setting gets it
 * restarted with the stack's own when it is stopped from outside.
 */
void itest_on_signal_restart_app(const char *before);

/*
 * A test-only fixture in the database (triggers, tables): `create` run by
 * itest_ddl_fixture_install (asserting, itest_sql_ddl), `drop` by
 * itest_ddl_fixture_remove (errors ignored, itest_sql_try_each) only when
 * it was installed, so the remove suits a cmocka teardown. Statements are
 * arrays of literals: ITEST_DDL_FIXTURE(create_array, drop_array).
 */
struct itest_ddl_fixture {
    const char *const *create;
    size_t n_create;
    const char *const *drop;
    size_t n_drop;
    bool installed;
};
#define ITEST_DDL_FIXTURE(create, drop)                                        \
    {                                                                          \
        (create), sizeof(create) / sizeof((create)[0]), (drop),                \
            sizeof(drop) / sizeof((drop)[0]), false                            \
    }
#define itest_ddl_fixture_install(f)                                           \
    itest_ddl_fixture_install_at(__FILE__, __LINE__, (f))
void itest_ddl_fixture_install_at(const char *file, int line,
                                  struct itest_ddl_fixture *f);
/* Returns 0 (a teardown's value). */
int itest_ddl_fixture_remove(struct itest_ddl_fixture *f);

/*
 * The fintegrate-consumer program the tests run: $FINTEGRATE_CONSUMER_BIN
 * (set by `make test`), else $FINTEGRATE_CHECKOUT/bin/fintegrate-consumer.
 */
const char *itest_consumer_bin(void);

/*
 * Appends to buf (NUL-terminated, size bytes) "export NAME='value'; " or,
 * when value is NULL, "unset NAME; ": the start of an itest_on_signal_run
 * command that gives the pool its environment back before restarting it.
 */
void itest_sh_env_cmd(char *buf, size_t size, const char *name,
                      const char *value);

/* setenv(name, value), or unsetenv(name) when value is NULL. */
void itest_setenv_or_unset(const char *name, const char *value);

/*
 * Forks and execs argv[0] (a path) with argv, the inherited environment
 * plus `env` ("NAME=value" strings, NULL-terminated, may be NULL; "NAME="
 * with nothing after the '=' unsets NAME), stdout and stderr appended to
 * out_path and err_path (NULL: /dev/null). The child gets its own process
 * group (its pid) and SIGTERM when this process dies (PR_SET_PDEATHSIG),
 * so nothing it starts outlives a crashed test. Returns the pid; asserts
 * that fork worked.
 */
#define itest_spawn(argv, env, out_path, err_path)                             \
    itest_spawn_at(__FILE__, __LINE__, (argv), (env), (out_path), (err_path))
pid_t itest_spawn_at(const char *file, int line, const char *const *argv,
                     const char *const *env, const char *out_path,
                     const char *err_path);

/*
 * Stops a process started by itest_spawn: SIGTERM, up to timeout_s for it
 * to exit, then SIGKILL to its whole process group. Returns its wait
 * status (WIFEXITED...), or -1 when it was not our child any more.
 */
int itest_stop_process(pid_t pid, double timeout_s);

/*
 * Complete lines (ending in '\n') of a file that contain every non-NULL
 * needle; 0 when the file cannot be read.
 */
int itest_count_lines(const char *path, const char *n1, const char *n2,
                      const char *n3);

/*
 * The process, among parent's live children, that holds a TCP socket
 * (IPv4 or IPv6) whose local port is local_port: /proc/net/tcp{,6} give
 * the socket's inode, /proc/PID/fd who holds it. For example the worker
 * behind a PostgreSQL backend, from pg_stat_activity.client_port. -1 when
 * none (needs the right to read the children's /proc/PID/fd: the suite
 * runs as root).
 */
pid_t itest_tcp_port_owner(pid_t parent, int local_port);

/* ------------------------------------------------------------ outbox */

/*
 * A connection of the test's own (PQfinish it), apart from the one
 * itest_sql uses: to hold a transaction (row locks) while requests run.
 * Asserts that it connected.
 */
#define itest_pg_connect() itest_pg_connect_at(__FILE__, __LINE__)
PGconn *itest_pg_connect_at(const char *file, int line);

/*
 * Writes a backlog straight in SQL, as a broker outage leaves it: n
 * customers of consumer_id named "<prefix>-<i>", each with per_customer
 * events (sequence 1 a customer_creation, then customer_status_change),
 * every payload the docs/API.md §8.2 message of its row (event_id, type,
 * sequence, owner, data, metadata with created_at in the §1 format),
 * publish_status pending, publish_try_count 1 (a failed inline try),
 * publish_last_tried_at = created_at, reason "Broker circuit open".
 * created_at starts an hour ago and grows by 1 ms per event in the order
 * (sequence, customer): customers interleave, and created_at order agrees
 * with every customer's sequence order. One statement: all or nothing,
 * visible at once. Returns the number of events (n * per_customer).
 */
#define itest_backlog_insert(consumer_id, prefix, n, per_customer)             \
    itest_backlog_insert_at(__FILE__, __LINE__, (consumer_id), (prefix), (n),  \
                            (per_customer))
long itest_backlog_insert_at(const char *file, int line,
                             const char *consumer_id, const char *prefix, int n,
                             int per_customer);

/* The summary of POST /events/resend or /events/redeliver. */
struct itest_redrive_summary {
    long total_pending, attempted, succeeded, failed, skipped;
    json_t *failed_events; /* borrowed from the response */
    bool truncated;        /* failed_events_truncated */
};

/*
 * Asserts that resp is the 200 answer of a resend or redeliver in the
 * shape of docs/API.md §5.7: data has exactly summary, failed_events and
 * failed_events_truncated; the five counts are non-negative integers with
 * total_pending = attempted + skipped and attempted = succeeded + failed;
 * failed_events holds min(failed, 100) entries of {event_id, event_type,
 * try_count, failure_reason (a sentence)}; failed_events_truncated says
 * whether more than 100 failed. Fills *s.
 */
#define itest_assert_redrive_summary(resp, s)                                  \
    itest_assert_redrive_summary_at(__FILE__, __LINE__, (resp), (s))
void itest_assert_redrive_summary_at(const char *file, int line,
                                     const struct itest_resp *resp,
                                     struct itest_redrive_summary *s);

#endif /* ITEST_H */
