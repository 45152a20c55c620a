/*
 * tests/integration/test_outbox_rows.c — every customer change writes
 * exactly one customer_events row, in the same transaction (issue 2, item 7;
 * docs/API.md §7.1, §10): event_type, source_service, per-customer sequence,
 * the owner's consumer_id, request_id = the response's X-Request-ID,
 * publish_status 'pending' (or 'published' once inline publishing exists),
 * and payload = the versioned message body with
 * the per-type data. Rejected requests write neither customer nor event; a
 * failing event insert (a test trigger) rolls the customer change back; text
 * round-trips byte for byte; concurrent changes keep sequence and created_at
 * in one order.
 */
#include "itest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct itest_consumer g_c;

static int
setup(void **state)
{
    return itest_group_setup_consumers(state, &g_c, NULL);
}

/* ------------------------------------------------------------- helpers */

struct event_row {
    char event_id[37], customer_id[37], consumer_id[37];
    char event_type[64], source_service[96], publish_status[16];
    char deliver_status[16], created_at[40];
    char *request_id; /* owned, NULL for SQL NULL */
    long sequence;
    json_t *payload;    /* owned */
    char *payload_text; /* owned */
};

static void
event_row_free(struct event_row *e)
{
    free(e->request_id);
    free(e->payload_text);
    json_decref(e->payload);
    memset(e, 0, sizeof(*e));
}

static const char EVENT_COLUMNS[] =
    "SELECT event_id::text, coalesce(customer_id::text, ''), "
    "consumer_id::text, event_type, source_service, sequence, payload::text, "
    "request_id, fintegrate_ts(created_at), publish_status, deliver_status "
    "FROM customer_events ";

static void
copy_col(char *dst, size_t size, PGresult *q, int row, int col)
{
    snprintf(dst, size, "%s", PQgetvalue(q, row, col));
}

static void
fill_event(struct event_row *e, PGresult *q, int row)
{
    copy_col(e->event_id, sizeof(e->event_id), q, row, 0);
    copy_col(e->customer_id, sizeof(e->customer_id), q, row, 1);
    copy_col(e->consumer_id, sizeof(e->consumer_id), q, row, 2);
    copy_col(e->event_type, sizeof(e->event_type), q, row, 3);
    copy_col(e->source_service, sizeof(e->source_service), q, row, 4);
    e->sequence = atol(PQgetvalue(q, row, 5));
    e->payload_text = strdup(PQgetvalue(q, row, 6));
    e->request_id =
        PQgetisnull(q, row, 7) ? NULL : strdup(PQgetvalue(q, row, 7));
    copy_col(e->created_at, sizeof(e->created_at), q, row, 8);
    copy_col(e->publish_status, sizeof(e->publish_status), q, row, 9);
    copy_col(e->deliver_status, sizeof(e->deliver_status), q, row, 10);
    json_error_t err;
    e->payload = json_loads(e->payload_text, JSON_REJECT_DUPLICATES, &err);
}

/* The events of a customer, in sequence order; returns how many (≤ max). */
static int
events_of(const char *customer_id, struct event_row *out, int max)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "%s WHERE customer_id = $1 ORDER BY sequence",
             EVENT_COLUMNS);
    PGresult *q = itest_sql(sql, customer_id);
    int n = PQntuples(q);
    for (int i = 0; i < n && i < max; i++)
        fill_event(&out[i], q, i);
    PQclear(q);
    return n;
}

static long
count_events_of_consumer(const char *consumer_id)
{
    return itest_sql_long(
        "SELECT count(*) FROM customer_events WHERE consumer_id = $1",
        consumer_id);
}

static long
count_customers_of_consumer(const char *consumer_id)
{
    return itest_sql_long(
        "SELECT count(*) FROM customers WHERE consumer_id = $1", consumer_id);
}

/*
 * Checks one event row against what the response promised: type, source,
 * sequence, owner, request id, publish state, and the payload envelope of
 * docs/API.md §8.2 with its data object returned (borrowed from e->payload).
 */
static json_t *
check_event(const struct itest_resp *r, const struct event_row *e,
            const char *event_id, const char *customer_id,
            const char *consumer_id, const char *type, const char *source,
            long sequence)
{
    if (event_id != NULL)
        itest_expect(r, strcmp(e->event_id, event_id) == 0,
                     "event_id %s must be the response's %s", e->event_id,
                     event_id);
    itest_expect(r, strcmp(e->customer_id, customer_id) == 0,
                 "customer_events.customer_id");
    itest_expect(r, strcmp(e->consumer_id, consumer_id) == 0,
                 "customer_events.consumer_id must be the owner %s, is %s",
                 consumer_id, e->consumer_id);
    itest_expect(r, strcmp(e->event_type, type) == 0,
                 "event_type must be %s, is %s", type, e->event_type);
    itest_expect(r, strcmp(e->source_service, source) == 0,
                 "source_service must be \"%s\", is \"%s\"", source,
                 e->source_service);
    itest_expect(r, e->sequence == sequence, "sequence must be %ld, is %ld",
                 sequence, e->sequence);
    /* Issue 2 writes the row 'pending'; once the inline publish of the
     * outbox issue lands, a reachable broker makes it 'published' right
     * after the commit. Either is the row of a committed change. */
    itest_expect(r,
                 strcmp(e->publish_status, "pending") == 0 ||
                     strcmp(e->publish_status, "published") == 0,
                 "publish_status must be pending (or published once "
                 "publishing exists), is %s",
                 e->publish_status);
    itest_expect(r, strcmp(e->deliver_status, "pending") == 0,
                 "deliver_status must be pending, is %s", e->deliver_status);
    const char *rid = itest_header(r, "X-Request-ID");
    itest_expect(r, e->request_id && rid && strcmp(e->request_id, rid) == 0,
                 "request_id column (%s) must be the response's X-Request-ID",
                 e->request_id ? e->request_id : "NULL");

    json_t *p = e->payload;
    itest_expect(r, json_is_object(p), "payload must be a JSON object: %s",
                 e->payload_text);
    itest_assert_keys(r, p, "schema_version", "event_id", "event_type",
                      "sequence", "consumer_id", "customer_id", "data",
                      "metadata");
    itest_assert_jstr(r, p, "schema_version", "1.0");
    itest_assert_jstr(r, p, "event_id", e->event_id);
    itest_assert_jstr(r, p, "event_type", type);
    json_t *seq = json_object_get(p, "sequence");
    itest_expect(r, json_is_integer(seq) && json_integer_value(seq) == sequence,
                 "payload.sequence must be the integer %ld", sequence);
    itest_assert_jstr(r, p, "consumer_id", consumer_id);
    itest_assert_jstr(r, p, "customer_id", customer_id);
    json_t *m = json_object_get(p, "metadata");
    itest_assert_keys(r, m, "created_at", "source_service", "request_id");
    itest_assert_jstr(r, m, "created_at", e->created_at);
    itest_assert_jstr(r, m, "source_service", source);
    itest_assert_jstr(r, m, "request_id", rid ? rid : "");
    json_t *data = json_object_get(p, "data");
    itest_expect(r, json_is_object(data), "payload.data must be an object");
    itest_assert_jstr(r, data, "customer_id", customer_id);
    return data;
}

/* Creation data: {customer_id, name, status} and, optionally, tags {}. */
static void
check_creation_data(const struct itest_resp *r, json_t *data, const char *name,
                    const char *status)
{
    json_t *tags = json_object_get(data, "tags");
    if (tags != NULL) {
        itest_expect(r, json_is_object(tags) && json_object_size(tags) == 0,
                     "creation data.tags must be {} without tags");
        itest_assert_keys(r, data, "customer_id", "name", "status", "tags");
    } else {
        itest_assert_keys(r, data, "customer_id", "name", "status");
    }
    itest_assert_jstr(r, data, "name", name);
    itest_assert_jstr(r, data, "status", status);
}

static struct itest_resp *
create(const char *name, const char *status, const char *rid)
{
    char *body = status ? itest_json_text(json_pack("{s:s, s:s}", "name", name,
                                                    "status", status))
                        : itest_json_text(json_pack("{s:s}", "name", name));
    char hdr[200];
    if (rid != NULL)
        snprintf(hdr, sizeof(hdr), "X-Request-ID: %s", rid);
    struct itest_resp *r = itest_request("POST", "/customer/data", g_c.key,
                                         body, rid ? hdr : NULL);
    free(body);
    return r;
}

static struct itest_resp *
change_status(const char *key, const char *id, const char *status)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\",\"status\":\"%s\"}",
             id, status);
    return itest_request("PATCH", "/customer/change-status", key, body, NULL);
}

static struct itest_resp *
delete_customer(const char *key, const char *id)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"customer_id\":\"%s\"}", id);
    return itest_request("DELETE", "/customer/data", key, body, NULL);
}

/* ------------------------------------------------------------------- */

static void
creation_writes_one_event(void **state)
{
    (void)state;
    char name[96], rid[96];
    itest_unique(name, sizeof(name), "outbox");
    itest_unique(rid, sizeof(rid), "req");
    struct itest_resp *r = create(name, NULL, rid);
    json_t *d = itest_assert_envelope(r, 201);
    const char *id = itest_jstr(d, "customer_id");
    itest_expect(r, strcmp(itest_header(r, "X-Request-ID"), rid) == 0,
                 "X-Request-ID must be echoed");

    struct event_row ev[4] = {0};
    int n = events_of(id, ev, 4);
    itest_expect(r, n == 1, "a creation must write exactly one event, has %d",
                 n);
    json_t *data = check_event(r, &ev[0], itest_jstr(d, "event_id"), id, g_c.id,
                               "customer_creation", "POST: /customer/data", 1);
    check_creation_data(r, data, name, "ACTIVE");
    itest_expect(r, strcmp(ev[0].request_id, rid) == 0,
                 "the client's X-Request-ID must be the event's request_id");
    event_row_free(&ev[0]);
    itest_resp_free(r);
}

static void
generated_request_id_is_stored(void **state)
{
    (void)state;
    char name[96];
    itest_unique(name, sizeof(name), "outbox-rid");
    struct itest_resp *r = create(name, "INACTIVE", NULL);
    json_t *d = itest_assert_envelope(r, 201);
    const char *id = itest_jstr(d, "customer_id");
    struct event_row ev[2] = {0};
    int n = events_of(id, ev, 2);
    itest_expect(r, n == 1, "exactly one event");
    json_t *data = check_event(r, &ev[0], itest_jstr(d, "event_id"), id, g_c.id,
                               "customer_creation", "POST: /customer/data", 1);
    check_creation_data(r, data, name, "INACTIVE");
    event_row_free(&ev[0]);
    itest_resp_free(r);
}

static void
status_changes_and_deletion_continue_the_sequence(void **state)
{
    (void)state;
    char name[96];
    itest_unique(name, sizeof(name), "  seq");
    const char *trimmed = name + 2;
    struct itest_resp *c = create(name, NULL, NULL);
    json_t *cd = itest_assert_envelope(c, 201);
    char id[37];
    snprintf(id, sizeof(id), "%s", itest_jstr(cd, "customer_id"));

    struct itest_resp *p1 = change_status(g_c.key, id, "INACTIVE");
    json_t *d1 = itest_assert_envelope(p1, 200);
    struct itest_resp *p2 = change_status(g_c.key, id, "ACTIVE");
    json_t *d2 = itest_assert_envelope(p2, 200);
    struct itest_resp *p3 = change_status(g_c.key, id, "INACTIVE");
    json_t *d3 = itest_assert_envelope(p3, 200);
    struct itest_resp *del = delete_customer(g_c.key, id);
    json_t *dd = itest_assert_envelope(del, 200);

    struct event_row ev[8] = {0};
    int n = events_of(id, ev, 8);
    itest_expect(del, n == 5,
                 "create + 3 status changes + delete = 5 events, has %d "
                 "(events stay after the delete)",
                 n);
    json_t *data =
        check_event(c, &ev[0], itest_jstr(cd, "event_id"), id, g_c.id,
                    "customer_creation", "POST: /customer/data", 1);
    check_creation_data(c, data, trimmed, "ACTIVE");

    struct {
        struct itest_resp *r;
        json_t *d;
        const char *prev, *now;
    } changes[3] = {{p1, d1, "ACTIVE", "INACTIVE"},
                    {p2, d2, "INACTIVE", "ACTIVE"},
                    {p3, d3, "ACTIVE", "INACTIVE"}};
    for (int i = 0; i < 3; i++) {
        data = check_event(changes[i].r, &ev[i + 1],
                           itest_jstr(changes[i].d, "event_id"), id, g_c.id,
                           "customer_status_change",
                           "PATCH: /customer/change-status", i + 2);
        itest_assert_keys(changes[i].r, data, "customer_id", "previous_status",
                          "status");
        itest_assert_jstr(changes[i].r, data, "previous_status",
                          changes[i].prev);
        itest_assert_jstr(changes[i].r, data, "status", changes[i].now);
    }
    data = check_event(del, &ev[4], itest_jstr(dd, "event_id"), id, g_c.id,
                       "customer_deletion", "DELETE: /customer/data", 5);
    itest_assert_keys(del, data, "customer_id", "name", "status");
    itest_assert_jstr(del, data, "name", trimmed);
    itest_assert_jstr(del, data, "status", "INACTIVE"); /* the last status */

    /* created_at order is sequence order. */
    for (int i = 1; i < n && i < 8; i++)
        itest_expect(del, strcmp(ev[i - 1].created_at, ev[i].created_at) <= 0,
                     "event %d created before event %d", i + 1, i);
    for (int i = 0; i < n && i < 8; i++)
        event_row_free(&ev[i]);
    itest_resp_free(c);
    itest_resp_free(p1);
    itest_resp_free(p2);
    itest_resp_free(p3);
    itest_resp_free(del);

    /* Another customer's sequence starts at 1 of its own. */
    char other[37], oname[96];
    itest_unique(oname, sizeof(oname), "seq2");
    itest_create_customer(g_c.key, oname, other);
    itest_expect(NULL,
                 itest_sql_long("SELECT sequence FROM customer_events WHERE "
                                "customer_id = $1",
                                other) == 1,
                 "each customer has its own sequence");
}

static void
rejected_requests_write_nothing(void **state)
{
    (void)state;
    char id[37], name[96], marker[96], body[256];
    itest_unique(name, sizeof(name), "keep");
    itest_create_customer(g_c.key, name, id);
    itest_unique(marker, sizeof(marker), "never");
    long customers = count_customers_of_consumer(g_c.id);
    long events = count_events_of_consumer(g_c.id);

    struct req {
        const char *method, *path, *key, *body;
        long status;
    } reqs[16];
    int n = 0;
    char b422[256], b400[256], bdup[256], b409[160], b404[160], bpatch422[160],
        bdel404[160], nf[37], random_key[64];
    itest_random_uuid(nf);
    itest_random_key(random_key);
    snprintf(b422, sizeof(b422), "{\"name\":\"%s\",\"status\":\"nope\"}",
             marker);
    snprintf(b400, sizeof(b400), "{\"name\":\"%s\"", marker);
    snprintf(bdup, sizeof(bdup), "{\"name\":\"%s\",\"name\":\"%s\"}", marker,
             marker);
    snprintf(b409, sizeof(b409),
             "{\"customer_id\":\"%s\",\"status\":\"ACTIVE\"}", id);
    snprintf(b404, sizeof(b404),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\"}", nf);
    snprintf(bpatch422, sizeof(bpatch422),
             "{\"customer_id\":\"%s\",\"status\":\"INACTIVE\",\"x\":1}", id);
    snprintf(bdel404, sizeof(bdel404), "{\"customer_id\":\"%s\"}", nf);
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", marker);
    reqs[n++] = (struct req){"POST", "/customer/data", g_c.key, b422, 422};
    reqs[n++] = (struct req){"POST", "/customer/data", g_c.key, b400, 400};
    reqs[n++] = (struct req){"POST", "/customer/data", g_c.key, bdup, 400};
    reqs[n++] = (struct req){"POST", "/customer/data", random_key, body, 401};
    reqs[n++] = (struct req){"PUT", "/customer/data", g_c.key, body, 405};
    reqs[n++] =
        (struct req){"PATCH", "/customer/change-status", g_c.key, b409, 409};
    reqs[n++] =
        (struct req){"PATCH", "/customer/change-status", g_c.key, b404, 404};
    reqs[n++] = (struct req){"PATCH", "/customer/change-status", g_c.key,
                             bpatch422, 422};
    reqs[n++] = (struct req){"DELETE", "/customer/data", g_c.key, bdel404, 404};
    for (int i = 0; i < n; i++) {
        struct itest_resp *r = itest_request(reqs[i].method, reqs[i].path,
                                             reqs[i].key, reqs[i].body, NULL);
        itest_assert_error(r, reqs[i].status, NULL);
        itest_expect(r, count_customers_of_consumer(g_c.id) == customers,
                     "a rejected request changed the customer count");
        itest_expect(r, count_events_of_consumer(g_c.id) == events,
                     "a rejected request wrote an event");
        itest_resp_free(r);
    }
    itest_expect(
        NULL,
        itest_sql_long("SELECT count(*) FROM customers WHERE name = $1",
                       marker) == 0,
        "no customer of the rejected name may exist");
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "payload::text LIKE '%' || $1 || '%'",
                                marker) == 0,
                 "no event may mention the rejected name");
}

static void
payload_holds_text_byte_for_byte(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "Robert'); DROP TABLE customer_events;--",
        "Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89",
        "e\xcc\x81 \"q\" \\ / \t tab",
        "\xe2\x80\xa8 \xef\xbf\xbd \xc2\xa0nbsp inside",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct itest_resp *r = create(texts[i], NULL, NULL);
        json_t *d = itest_assert_envelope(r, 201);
        const char *id = itest_jstr(d, "customer_id");
        struct event_row ev[2] = {0};
        int n = events_of(id, ev, 2);
        itest_expect(r, n == 1, "exactly one event");
        json_t *data =
            check_event(r, &ev[0], itest_jstr(d, "event_id"), id, g_c.id,
                        "customer_creation", "POST: /customer/data", 1);
        itest_expect(r, strcmp(itest_jstr(data, "name"), texts[i]) == 0,
                     "payload.data.name must be the name byte for byte: [%s] "
                     "vs [%s]",
                     texts[i], itest_jstr(data, "name"));
        event_row_free(&ev[0]);
        itest_resp_free(r);
    }
}

/* ---------------------------------------------- same transaction (trigger) */

/*
 * A trigger that makes the event insert fail for payloads naming
 * "itest-poison-" or for customers listed in itest_poison: the service's
 * transaction must then roll the customer change back.
 */
static const char *const poison_create[] = {
    "CREATE TABLE IF NOT EXISTS itest_poison (customer_id uuid PRIMARY "
    "KEY)",
    "CREATE OR REPLACE FUNCTION itest_poison_event() RETURNS trigger "
    "LANGUAGE plpgsql AS $f$ BEGIN "
    "IF NEW.payload::text LIKE '%itest-poison-%' OR EXISTS (SELECT 1 "
    "FROM itest_poison p WHERE p.customer_id = NEW.customer_id) THEN "
    "RAISE EXCEPTION 'itest poison trigger refused this event'; END IF; "
    "RETURN NEW; END $f$",
    "DROP TRIGGER IF EXISTS itest_poison_event ON customer_events",
    "CREATE TRIGGER itest_poison_event BEFORE INSERT ON customer_events "
    "FOR EACH ROW EXECUTE FUNCTION itest_poison_event()",
};
static const char *const poison_drop[] = {
    "DROP TRIGGER IF EXISTS itest_poison_event ON customer_events",
    "DROP FUNCTION IF EXISTS itest_poison_event()",
    "DROP TABLE IF EXISTS itest_poison",
};
static struct itest_ddl_fixture g_poison =
    ITEST_DDL_FIXTURE(poison_create, poison_drop);

static void
install_poison(void)
{
    itest_ddl_fixture_install(&g_poison);
}

static int
remove_poison(void **state)
{
    (void)state;
    return itest_ddl_fixture_remove(&g_poison);
}

static void
failed_event_insert_rolls_back_the_change(void **state)
{
    (void)state;
    install_poison();

    /* Create: no customer without its event. */
    char name[96];
    itest_unique(name, sizeof(name), "itest-poison");
    long customers = count_customers_of_consumer(g_c.id);
    long events = count_events_of_consumer(g_c.id);
    struct itest_resp *r = create(name, NULL, NULL);
    itest_assert_internal_error(r);
    itest_resp_free(r);
    itest_expect(
        NULL,
        itest_sql_long("SELECT count(*) FROM customers WHERE name = $1",
                       name) == 0 &&
            count_customers_of_consumer(g_c.id) == customers,
        "the customer row must be rolled back with its event");

    /* Status change and delete of a customer whose events are refused. */
    char id[37], cname[96];
    itest_unique(cname, sizeof(cname), "victim");
    itest_create_customer(g_c.key, cname, id);
    events = count_events_of_consumer(g_c.id);
    char *updated = itest_sql_value(
        "SELECT fintegrate_ts(updated_at) FROM customers WHERE customer_id = "
        "$1",
        id);
    PQclear(itest_sql("INSERT INTO itest_poison VALUES ($1)", id));

    r = change_status(g_c.key, id, "INACTIVE");
    itest_assert_internal_error(r);
    itest_resp_free(r);
    PGresult *q = itest_sql("SELECT status, fintegrate_ts(updated_at) FROM "
                            "customers WHERE customer_id = $1",
                            id);
    itest_expect(NULL,
                 PQntuples(q) == 1 &&
                     strcmp(PQgetvalue(q, 0, 0), "ACTIVE") == 0 &&
                     strcmp(PQgetvalue(q, 0, 1), updated) == 0,
                 "the status change must be rolled back with its event");
    PQclear(q);

    r = delete_customer(g_c.key, id);
    itest_assert_internal_error(r);
    itest_resp_free(r);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customers WHERE "
                                "customer_id = $1",
                                id) == 1,
                 "the delete must be rolled back with its event");
    itest_expect(NULL, count_events_of_consumer(g_c.id) == events,
                 "no event may be left by the failed changes");
    free(updated);

    /* Lift the poison: the same worker pool carries on, sequence 2 next. */
    PQclear(itest_sql("DELETE FROM itest_poison WHERE customer_id = $1", id));
    r = change_status(g_c.key, id, "INACTIVE");
    json_t *d = itest_assert_envelope(r, 200);
    itest_expect(r,
                 itest_sql_long("SELECT sequence FROM customer_events WHERE "
                                "event_id = $1",
                                itest_jstr(d, "event_id")) == 2,
                 "the next event after the rolled-back ones is sequence 2");
    itest_resp_free(r);
}

/* ------------------------------------------------------ concurrency */

/* The sequence and created_at are taken inside the INSERT and spliced into
 * the payload there: the stored body must carry the row's own values. */
static void
expect_payload_matches_row(const struct event_row *e)
{
    json_t *seq = json_object_get(e->payload, "sequence");
    itest_expect(NULL,
                 json_is_integer(seq) && json_integer_value(seq) == e->sequence,
                 "event %s: payload.sequence must be the row's %ld: %s",
                 e->event_id, e->sequence, e->payload_text);
    const char *ts =
        itest_jstr(json_object_get(e->payload, "metadata"), "created_at");
    itest_expect(NULL, ts && strcmp(ts, e->created_at) == 0,
                 "event %s: payload.metadata.created_at must be the row's %s: "
                 "%s",
                 e->event_id, e->created_at, e->payload_text);
    itest_assert_jstr(NULL, e->payload, "event_id", e->event_id);
}

/* Every event of `where` ends published: inline, or (one held behind an
 * earlier event of its customer still in flight on another worker) by the
 * relay within a pass or two.  Returns how many were held. */
static long
expect_all_published(const char *what, const char *where, const char *param)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM customer_events WHERE %s "
             "AND publish_status <> 'published'",
             where);
    long left = -1;
    for (int i = 0; i < 100 && left != 0; i++) {
        left = param ? itest_sql_long(sql, param) : itest_sql_long0(sql);
        if (left != 0)
            itest_sleep_ms(100);
    }
    itest_expect(NULL, left == 0, "%s: %ld events still not published", what,
                 left);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM customer_events WHERE %s "
             "AND publish_try_count > 1",
             where);
    return param ? itest_sql_long(sql, param) : itest_sql_long0(sql);
}

struct toggler {
    const char *id;
    int first; /* 0: start with INACTIVE, 1: start with ACTIVE */
    int ok, conflict, other;
    long other_status;
};

static void *
toggle_thread(void *arg)
{
    struct toggler *t = arg;
    for (int i = 0; i < 12; i++) {
        const char *st = ((i + t->first) % 2 == 0) ? "INACTIVE" : "ACTIVE";
        struct itest_resp *r = change_status(g_c.key, t->id, st);
        if (r->status == 200)
            t->ok++;
        else if (r->status == 409)
            t->conflict++;
        else {
            t->other++;
            t->other_status = r->status;
        }
        itest_resp_free(r);
    }
    itest_thread_done();
    return NULL;
}

static void
concurrent_changes_keep_one_gapless_sequence(void **state)
{
    (void)state;
    char id[37], name[96];
    itest_unique(name, sizeof(name), "race");
    itest_create_customer(g_c.key, name, id);

    enum { N = 4 };
    struct toggler t[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        t[i] = (struct toggler){.id = id, .first = i % 2};
        pthread_create(&th[i], NULL, toggle_thread, &t[i]);
    }
    int ok = 0, other = 0;
    long other_status = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += t[i].ok;
        other += t[i].other;
        if (t[i].other)
            other_status = t[i].other_status;
    }
    itest_expect(NULL, other == 0,
                 "concurrent status changes must answer 200 or 409 only "
                 "(%d answered %ld)",
                 other, other_status);
    itest_expect(NULL, ok > 0, "some status change must succeed");

    struct event_row ev[64] = {0};
    int n = events_of(id, ev, 64);
    itest_expect(NULL, n == ok + 1,
                 "one event per successful change: %d events, %d successes", n,
                 ok);
    const char *status = "ACTIVE";
    for (int i = 0; i < n && i < 64; i++) {
        itest_expect(NULL, ev[i].sequence == i + 1,
                     "sequences must be 1..%d without gaps (position %d has "
                     "%ld)",
                     n, i + 1, ev[i].sequence);
        expect_payload_matches_row(&ev[i]);
        if (i > 0) {
            itest_expect(NULL,
                         strcmp(ev[i - 1].created_at, ev[i].created_at) <= 0,
                         "created_at order must agree with sequence order "
                         "(%ld at %s, %ld at %s)",
                         ev[i - 1].sequence, ev[i - 1].created_at,
                         ev[i].sequence, ev[i].created_at);
            json_t *data = json_object_get(ev[i].payload, "data");
            const char *prev = itest_jstr(data, "previous_status");
            itest_expect(NULL, prev && strcmp(prev, status) == 0,
                         "event %ld: previous_status %s must be the status "
                         "of the event before (%s)",
                         ev[i].sequence, prev ? prev : "?", status);
            status = itest_jstr(data, "status");
            if (status == NULL)
                status = "?";
        }
    }
    long held = expect_all_published("concurrent status changes",
                                     "customer_id = $1", id);
    print_message("  %d events, %ld held behind an earlier one in flight "
                  "and published by the relay\n",
                  n, held);
    char *final = itest_sql_value(
        "SELECT status FROM customers WHERE customer_id = $1", id);
    itest_expect(NULL, final && strcmp(final, status) == 0,
                 "the customer's status (%s) must be the last event's (%s)",
                 final ? final : "?", status);
    free(final);
    for (int i = 0; i < n && i < 64; i++)
        event_row_free(&ev[i]);
}

/* Consumer events have no customer and share one sequence (an advisory
 * lock, then the INSERT takes the next number): administrators creating
 * consumers at once still get 1..n without gaps, each payload with its
 * row's sequence. */
struct consumer_maker {
    int thread;
    int ok;
    long other_status;
};

static void *
make_consumers_thread(void *arg)
{
    struct consumer_maker *m = arg;
    for (int i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"consumer_name\":\"sysseq_%ld_%d_%d\"}",
                 (long)getpid(), m->thread, i);
        struct itest_resp *r = itest_request("POST", "/consumer/data",
                                             itest_admin_key(), body, NULL);
        if (r->status == 201)
            m->ok++;
        else
            m->other_status = r->status;
        itest_resp_free(r);
    }
    itest_thread_done();
    return NULL;
}

static void
concurrent_consumer_events_keep_the_system_sequence(void **state)
{
    (void)state;
    enum { N = 4 };
    struct consumer_maker m[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        m[i] = (struct consumer_maker){.thread = i};
        pthread_create(&th[i], NULL, make_consumers_thread, &m[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        itest_expect(NULL, m[i].ok == 5,
                     "thread %d: every consumer creation must answer 201 "
                     "(one answered %ld)",
                     i, m[i].other_status);
    }
    char sql[512];
    snprintf(sql, sizeof(sql), "%s WHERE customer_id IS NULL ORDER BY sequence",
             EVENT_COLUMNS);
    PGresult *q = itest_sql0(sql);
    int n = PQntuples(q);
    itest_expect(NULL, n >= N * 5, "%d system events, at least %d expected", n,
                 N * 5);
    for (int i = 0; i < n; i++) {
        struct event_row e = {0};
        fill_event(&e, q, i);
        itest_expect(NULL, e.sequence == i + 1,
                     "the system sequence must be 1..%d without gaps "
                     "(position %d has %ld)",
                     n, i + 1, e.sequence);
        if (i > 0) {
            char prev[40];
            snprintf(prev, sizeof(prev), "%s", PQgetvalue(q, i - 1, 8));
            itest_expect(NULL, strcmp(prev, e.created_at) <= 0,
                         "created_at order must agree with the system "
                         "sequence (%d at %s, %ld at %s)",
                         i, prev, e.sequence, e.created_at);
        }
        json_t *seq = json_object_get(e.payload, "sequence");
        itest_expect(
            NULL, json_is_integer(seq) && json_integer_value(seq) == e.sequence,
            "system event %s: payload.sequence must be %ld: %s", e.event_id,
            e.sequence, e.payload_text);
        event_row_free(&e);
    }
    PQclear(q);
    long held =
        expect_all_published("consumer events", "customer_id IS NULL", NULL);
    print_message("  %d system events, %ld held behind an earlier one in "
                  "flight and published by the relay\n",
                  n, held);
}

/* Several clients delete the same customer at once: exactly one wins. */
struct deleter {
    const char *id;
    pthread_barrier_t *go;
    long status;
};

static void *
delete_thread(void *arg)
{
    struct deleter *d = arg;
    pthread_barrier_wait(d->go);
    struct itest_resp *r = delete_customer(g_c.key, d->id);
    d->status = r->status;
    itest_resp_free(r);
    itest_thread_done();
    return NULL;
}

static void
concurrent_deletes_one_wins(void **state)
{
    (void)state;
    char id[37], name[96];
    itest_unique(name, sizeof(name), "delrace");
    itest_create_customer(g_c.key, name, id);

    enum { N = 6 };
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    struct deleter d[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        d[i] = (struct deleter){.id = id, .go = &go};
        pthread_create(&th[i], NULL, delete_thread, &d[i]);
    }
    int ok = 0, not_found = 0;
    long other = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (d[i].status == 200)
            ok++;
        else if (d[i].status == 404)
            not_found++;
        else
            other = d[i].status;
    }
    pthread_barrier_destroy(&go);
    itest_expect(NULL, ok == 1 && not_found == N - 1,
                 "%d concurrent deletes: %d answered 200, %d 404, other %ld; "
                 "exactly one may win",
                 N, ok, not_found, other);
    itest_expect(NULL,
                 itest_sql_long("SELECT count(*) FROM customer_events WHERE "
                                "customer_id = $1 AND event_type = "
                                "'customer_deletion'",
                                id) == 1,
                 "exactly one deletion event");
}

/* Status changes racing a delete: nothing happens to a deleted customer. */
static void *
toggle_until_gone(void *arg)
{
    struct toggler *t = arg;
    for (int i = 0; i < 200; i++) {
        const char *st = (i % 2 == 0) ? "INACTIVE" : "ACTIVE";
        struct itest_resp *r = change_status(g_c.key, t->id, st);
        long code = r->status;
        itest_resp_free(r);
        if (code == 200)
            t->ok++;
        else if (code == 409)
            t->conflict++;
        else if (code == 404)
            break; /* deleted */
        else {
            t->other++;
            t->other_status = code;
        }
    }
    itest_thread_done();
    return NULL;
}

static void
status_changes_racing_a_delete(void **state)
{
    (void)state;
    char id[37], name[96];
    itest_unique(name, sizeof(name), "patchdel");
    itest_create_customer(g_c.key, name, id);
    struct toggler t[2] = {{.id = id}, {.id = id}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, toggle_until_gone, &t[i]);
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    struct itest_resp *r = delete_customer(g_c.key, id);
    itest_assert_envelope(r, 200);
    itest_resp_free(r);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    itest_expect(NULL, t[0].other + t[1].other == 0,
                 "status changes racing a delete answered HTTP %ld",
                 t[0].other ? t[0].other_status : t[1].other_status);

    struct event_row ev[512] = {0};
    int n = events_of(id, ev, 512);
    int ok = t[0].ok + t[1].ok;
    itest_expect(NULL, n == ok + 2,
                 "%d events for 1 create + %d status changes + 1 delete", n,
                 ok);
    for (int i = 0; i < n && i < 512; i++)
        itest_expect(NULL, ev[i].sequence == i + 1,
                     "sequence must be gapless (position %d has %ld)", i + 1,
                     ev[i].sequence);
    if (n >= 2 && n <= 512)
        itest_expect(
            NULL, strcmp(ev[n - 1].event_type, "customer_deletion") == 0,
            "the deletion must be the last event, is %s", ev[n - 1].event_type);
    for (int i = 0; i < n && i < 512; i++)
        event_row_free(&ev[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(creation_writes_one_event),
        cmocka_unit_test(generated_request_id_is_stored),
        cmocka_unit_test(status_changes_and_deletion_continue_the_sequence),
        cmocka_unit_test(rejected_requests_write_nothing),
        cmocka_unit_test(payload_holds_text_byte_for_byte),
        cmocka_unit_test_teardown(failed_event_insert_rolls_back_the_change,
                                  remove_poison),
        cmocka_unit_test(concurrent_changes_keep_one_gapless_sequence),
        cmocka_unit_test(concurrent_consumer_events_keep_the_system_sequence),
        cmocka_unit_test(concurrent_deletes_one_wins),
        cmocka_unit_test(status_changes_racing_a_delete),
    };
    return itest_exit(cmocka_run_group_tests_name("outbox_rows", tests, setup,
                                                  itest_group_teardown));
}
