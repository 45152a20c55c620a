/*
 * fcgi-app/http/idempotency.c — see idempotency.h.
 */
#include "idempotency.h"
#include "common/log.h"
#include "common/text.h"

#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Keys are quoted in messages up to this many characters, then "...". */
#define QUOTE_MAX 64

bool
idem_is_write(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0 ||
           strcmp(method, "DELETE") == 0;
}

int
idem_check_key(const char *key, struct app_err *err)
{
    size_t n = strlen(key);
    if (n == 0) {
        err_set(err, 422, "Idempotency-Key must not be empty");
        return -1;
    }
    if (n > IDEM_KEY_MAX) {
        err_set(err, 422,
                "Idempotency-Key must be at most %d characters (got %zu)",
                IDEM_KEY_MAX, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < '!' || c > '~') {
            err_set(err, 422,
                    "Idempotency-Key must hold only visible ASCII "
                    "characters (! to ~)");
            return -1;
        }
    }
    return 0;
}

int
idem_canonical_body(const char *body, size_t len, struct strbuf *out)
{
    json_t *v = NULL;
    if (len > 0)
        v = json_loadb(
            body, len,
            JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, NULL);
    if (v == NULL) {
        sb_append(out, body ? body : "", len);
        return out->oom ? -1 : 0;
    }
    /* JSON_ENCODE_ANY: a scalar body is still JSON (and a 400 later).  No
     * decoding flag here: JSON_ALLOW_NUL's bit means an indent to dumps. */
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    if (text == NULL)
        return -1;
    sb_puts(out, text);
    free(text);
    return out->oom ? -1 : 1;
}

static void
put_part(struct strbuf *sb, const char *s, size_t n)
{
    sb_printf(sb, "%zu:", n);
    sb_append(sb, s, n);
}

int
idem_fingerprint(const char *method, const char *path, const char *query,
                 const char *body, size_t len, char out[65])
{
    struct strbuf sb = STRBUF_INIT, canon = STRBUF_INIT;
    int rc = -1;
    int kind = idem_canonical_body(body, len, &canon);
    if (kind < 0)
        goto out;
    put_part(&sb, method, strlen(method));
    put_part(&sb, path, strlen(path));
    put_part(&sb, query, strlen(query));
    sb_puts(&sb, kind == 1 ? "json" : "bytes");
    put_part(&sb, canon.buf ? canon.buf : "", canon.len);
    if (sb.oom)
        goto out;
    sha256_hex(sb_str(&sb), sb.len, out);
    rc = 0;
out:
    sb_free(&sb);
    sb_free(&canon);
    return rc;
}

/* ---- the flow ------------------------------------------------------------ */

/* The quoted key for a message: at most QUOTE_MAX characters, then "...". */
static int
quoted_len(const char *key)
{
    size_t n = strlen(key);
    return (int)(n > QUOTE_MAX ? QUOTE_MAX : n);
}

static const char *
quoted_tail(const char *key)
{
    return strlen(key) > QUOTE_MAX ? "..." : "";
}

/* 409: the first call with the key is still running.  -1. */
static int
still_processing(const struct idem *st, struct app_err *err)
{
    err_set(err, 409, "Idempotency-Key \"%.*s%s\" is still being processed",
            quoted_len(st->key), st->key, quoted_tail(st->key));
    return -1;
}

/* 409 when the wait for another call's key passed the lock timeout. */
static int
wait_failed(const struct idem *st, struct app_err *err)
{
    if (strcmp(err->code, "55P03") == 0)
        return still_processing(st, err);
    return -1;
}

/* A live row was found: replay it (1), or 422 / 409 (-1). */
static int
found_row(struct idem *st, struct app_err *err)
{
    if (!st->stored.same) {
        err_set(err, 422,
                "Idempotency-Key \"%.*s%s\" was already used for a "
                "different request",
                quoted_len(st->key), st->key, quoted_tail(st->key));
        return -1;
    }
    if (st->stored.status == 0) {
        /* Not reached with committed rows (the answer is written before
         * COMMIT); kept so that an odd row never replays an empty body. */
        return still_processing(st, err);
    }
    st->replay = true;
    return 1;
}

int
idem_start(struct idem *st, struct db *db, const struct request *req,
           const struct route *route, const char *consumer_id,
           struct app_err *err)
{
    bool claimed = false;

    if (!idem_is_write(req->method))
        return 0;
    const char *key = FCGX_GetParam("HTTP_IDEMPOTENCY_KEY", req->fcgx->envp);
    if (key == NULL)
        return 0;
    if (route->flags & ROUTE_NO_IDEM) {
        err_set(err, 422,
                "Idempotency-Key is not accepted here: the answer holds a "
                "secret that is never stored");
        return -1;
    }
    if (idem_check_key(key, err) < 0)
        return -1;
    if (idem_fingerprint(req->method, req->path, req->query, req->body,
                         req->body_len, st->fp) < 0) {
        err_set(err, 500, "Out of memory reading the request");
        return -1;
    }
    st->key = key;
    snprintf(st->consumer_id, sizeof st->consumer_id, "%s", consumer_id);

    if (route->flags & ROUTE_IDEM_AFTER) {
        st->mode = IDEM_AFTER;
        if (idem_db_lock(db, st->consumer_id, key, err) < 0)
            return wait_failed(st, err);
        st->locked = true;
        if (idem_db_lookup(db, st->consumer_id, key, st->fp, &st->stored, err) <
            0)
            return -1;
        if (st->stored.found)
            return found_row(st, err);
        st->store = true;
        return 0;
    }

    st->mode = IDEM_HELD;
    if (db_begin_held(db, err) < 0)
        return -1;
    st->held = true;
    if (idem_db_claim(db, st->consumer_id, key, st->fp, &claimed, err) < 0)
        return wait_failed(st, err);
    if (claimed) {
        st->store = true;
        return 0;
    }
    if (idem_db_lookup(db, st->consumer_id, key, st->fp, &st->stored, err) < 0)
        return -1;
    if (!st->stored.found) {
        /* Not reached: the claim row-locked a live row, which nothing can
         * delete meanwhile, and both statements age it by the
         * transaction's now().  A guard, answered like a busy key. */
        return still_processing(st, err);
    }
    return found_row(st, err);
}

/* Ends the held transaction without storing anything. */
static void
release(struct idem *st, struct db *db)
{
    if (st->held) {
        db_unhold(db);
        db_rollback(db);
        st->held = false;
    }
    if (st->locked) {
        struct app_err e = APP_ERR_INIT;
        if (idem_db_unlock(db, st->consumer_id, st->key, &e) < 0)
            log_warn("idempotency: releasing a key's lock failed (%s); it "
                     "goes with the connection",
                     e.detail ? e.detail : e.msg);
        err_clear(&e);
        st->locked = false;
    }
}

/* Test-only (idempotency.h): the key whose COMMIT kills this worker. */
static const char *
kill_after_commit_key(void)
{
    static bool read;
    static const char *value;
    if (!read) {
        value = getenv("FINTEGRATE_TEST_KILL_AFTER_COMMIT_KEY");
        read = true;
    }
    return value;
}

/* The handler's transaction failed at a level the savepoints do not cover
 * (a statement outside its db_begin): nothing of it survives, so the answer
 * is stored on its own, in a fresh transaction that claims the key again. */
static int
reclaim(struct idem *st, struct db *db, struct app_err *err)
{
    bool claimed = false;
    db_unhold(db);
    db_rollback(db);
    st->held = false;
    if (db_begin_held(db, err) < 0)
        return -1;
    st->held = true;
    if (idem_db_claim(db, st->consumer_id, st->key, st->fp, &claimed, err) < 0)
        return -1;
    return claimed ? 0 : 1;
}

static int
finish_held(struct idem *st, struct db *db, int status, const char *body,
            struct app_err *err)
{
    if (db_tx_failed(db)) {
        int r = reclaim(st, db, err);
        if (r != 0) {
            /* Another call took the key meanwhile, or the database failed:
             * this answer goes out unstored (nothing was changed). */
            log_warn("idempotency: answer %d not stored (the transaction had "
                     "failed)",
                     status);
            err_clear(err);
            release(st, db);
            return 0;
        }
    }
    if (idem_db_answer(db, st->consumer_id, st->key, status, body, err) < 0) {
        release(st, db);
        return -1;
    }
    db_unhold(db);
    st->held = false;
    if (db_commit(db, err) < 0)
        return -1;
    const char *k = kill_after_commit_key();
    if (k != NULL && strcmp(k, st->key) == 0) {
        log_warn("test hook FINTEGRATE_TEST_KILL_AFTER_COMMIT_KEY: killing "
                 "this worker after COMMIT, before the answer");
        raise(SIGKILL);
    }
    return 0;
}

int
idem_finish(struct idem *st, struct db *db, int status, const char *body,
            struct app_err *err)
{
    if (st->mode == IDEM_OFF || !st->store || status >= 500) {
        release(st, db);
        return 0;
    }
    if (st->mode == IDEM_HELD)
        return finish_held(st, db, status, body, err);

    /* IDEM_AFTER: the change is committed already; a failure to store the
     * answer cannot change the answer. */
    struct app_err e = APP_ERR_INIT;
    bool stored = false;
    if (idem_db_put(db, st->consumer_id, st->key, st->fp, status, body, &stored,
                    &e) < 0)
        log_warn("idempotency: storing the answer failed (%s)",
                 e.detail ? e.detail : e.msg);
    else if (!stored)
        log_warn("idempotency: the key was taken by another request "
                 "meanwhile; this answer is not stored");
    err_clear(&e);
    release(st, db);
    return 0;
}

void
idem_end(struct idem *st, struct db *db)
{
    release(st, db);
    idem_row_free(&st->stored);
    st->store = st->replay = false;
}
