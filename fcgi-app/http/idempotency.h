/*
 * fcgi-app/http/idempotency.h — safe retries: the optional Idempotency-Key
 * header of POST, PATCH and DELETE (docs/API.md §6).
 *
 * The first call with a key runs as usual; its answer (status and the
 * exact body bytes) is stored with the key, scoped to the calling consumer,
 * for 24 hours.  A later call with the same key and the same request
 * (method, path, query string and body as JSON) gets that answer again with
 * "Idempotent-Replayed: true" and changes nothing; the same key with another
 * request is 422.  Only 2xx and 4xx answers are stored, never a 5xx.
 *
 * How the answer is kept with the change (db/idempotency_db.h):
 *   IDEM_HELD   the pipeline opens the transaction (db_begin_held) and
 *               claims the key's row first; the handler's own
 *               begin/commit/rollback become savepoints inside it; then the
 *               answer is written into the row and everything commits at
 *               once.  A committed change and its answer never part: a
 *               retry after the worker died between COMMIT and the answer
 *               finds the answer.  A second call with the key waits on the
 *               first's uncommitted row (lock_timeout: 409).
 *   IDEM_AFTER  routes flagged ROUTE_IDEM_AFTER (the re-drives, which must
 *               commit batch by batch): a session advisory lock on the key
 *               keeps a second call waiting, and the answer is stored after
 *               the handler.  A worker killed in between loses the answer,
 *               and the retry runs the re-drive again over what is due by
 *               then (at-least-once, as any re-drive: consumers deduplicate
 *               by event_id).
 *
 * Calls without the header, and GET requests (which ignore it), cost one
 * parameter lookup and nothing else.
 *
 * Test-only: FINTEGRATE_TEST_KILL_AFTER_COMMIT_KEY, when set in a worker's
 * environment, makes the worker SIGKILL itself right after the COMMIT of a
 * call whose Idempotency-Key equals its value, before answering
 * (tests/integration/test_idempotency.c).  Never set it in production.
 */
#ifndef FI_IDEMPOTENCY_H
#define FI_IDEMPOTENCY_H

#include "../core/app_err.h"
#include "common/strbuf.h"
#include "../db/db.h"
#include "../db/idempotency_db.h"
#include "request.h"
#include "router.h"

#include <stdbool.h>
#include <stddef.h>

/* The header's limits (docs/API.md §6). */
#define IDEM_KEY_MAX 255

enum idem_mode {
    IDEM_OFF,   /* no key: the request runs exactly as without the feature */
    IDEM_HELD,  /* answer stored in the change's transaction */
    IDEM_AFTER, /* answer stored after the handler (ROUTE_IDEM_AFTER) */
};

/* One request's state; IDEM_INIT, then idem_start ... idem_end. */
struct idem {
    enum idem_mode mode;
    const char *key; /* borrowed from the FastCGI params */
    char consumer_id[37];
    char fp[65]; /* the request fingerprint, hex */
    bool store;  /* this call's answer is to be stored */
    bool held;   /* the held transaction is open */
    bool locked; /* the advisory lock is held */
    bool replay; /* `stored` is the answer to send */
    struct idem_row stored;
};

#define IDEM_INIT                                                              \
    {                                                                          \
        .mode = IDEM_OFF                                                       \
    }

/* ---- pure parts (unit-tested) ------------------------------------------ */

/* POST, PATCH and DELETE take the header; every other method ignores it. */
bool idem_is_write(const char *method);

/* 0 when `key` is 1-255 visible ASCII characters ('!'..'~'); else -1 with a
 * 422 naming the header in `err`. */
int idem_check_key(const char *key, struct app_err *err)
    __attribute__((warn_unused_result));

/* Appends the body as it is compared: its canonical JSON (keys sorted,
 * compact, strings as UTF-8) when it is JSON without duplicate keys, else
 * its bytes.  Returns 1 (JSON), 0 (bytes), -1 (out of memory). */
int idem_canonical_body(const char *body, size_t len, struct strbuf *out);

/* SHA-256 (hex, out[65]) of the method, path, query string and canonical
 * body, each length-prefixed.  0, or -1 when memory ran out. */
int idem_fingerprint(const char *method, const char *path, const char *query,
                     const char *body, size_t len, char out[65])
    __attribute__((warn_unused_result));

/* ---- the flow (pipeline.c) ---------------------------------------------- */

/*
 * Once the caller is known, before the body is read.  Returns 0 to go on
 * (st->mode says whether a key is in play), 1 when st->stored holds the
 * answer to send instead (a replay, or the answer a waiting call found),
 * or -1 with `err`: 422 (a bad header, a key used for another request, a
 * route that refuses keys), 409 (the first call with the key is still
 * running past the lock timeout), 5xx.  Call idem_end in every case.
 */
int idem_start(struct idem *st, struct db *db, const struct request *req,
               const struct route *route, const char *consumer_id,
               struct app_err *err) __attribute__((warn_unused_result));

/*
 * After the handler, with the answer rendered (`body`: its bytes, borrowed,
 * NUL-terminated): stores a 2xx/4xx answer and commits (IDEM_HELD: the
 * change and the answer together), or rolls back on a 5xx.  0 ok; -1 with
 * `err` (a 5xx) when the commit failed: then nothing was stored and the
 * client must get `err` instead, and no event may be published.
 */
int idem_finish(struct idem *st, struct db *db, int status, const char *body,
                struct app_err *err) __attribute__((warn_unused_result));

/* Releases what is still held (rolls back, unlocks) and frees.  Safe to
 * call twice and on IDEM_INIT. */
void idem_end(struct idem *st, struct db *db);

#endif
