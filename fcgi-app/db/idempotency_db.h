/*
 * fcgi-app/db/idempotency_db.h — the stored answers of Idempotency-Key
 * calls (table idempotency_keys, migration 008; docs/API.md §6).
 *
 * A key is scoped to its consumer and lives 24 hours: a row older than
 * that counts as absent everywhere here (IDEM_DB_TTL), and
 * idem_db_expire() deletes such rows in bounded batches.
 *
 * Two ways to keep a second call with the same key out while the first
 * runs (http/idempotency.h says which route uses which):
 *   * inside the request's held transaction: idem_db_claim() inserts the
 *     key's row first; a concurrent claim of the same key waits on that
 *     uncommitted row (lock_timeout bounds the wait) and, once the first
 *     commits, finds its answer;
 *   * around a handler that commits by itself (a re-drive, batch by
 *     batch): a session advisory lock on the key (idem_db_lock), released
 *     by idem_db_unlock or when the connection ends.
 *
 * `fp` is the request fingerprint: 64 lower-case hex digits (SHA-256).
 * Depends on db.h only.
 */
#ifndef FI_IDEMPOTENCY_DB_H
#define FI_IDEMPOTENCY_DB_H

#include "db.h"

#include <stdbool.h>
#include <stddef.h>

/* How long a key is remembered: SQL interval text. */
#define IDEM_DB_TTL "24 hours"

/* A stored answer (idem_db_lookup). */
struct idem_row {
    bool found;      /* a live row exists */
    bool same;       /* its fingerprint equals the one asked about */
    int status;      /* 0 when the row holds no answer (never committed so) */
    char *body;      /* owned (free()); NULL when status is 0 */
    size_t body_len; /* bytes of body */
};

void idem_row_free(struct idem_row *r);

/*
 * In an open transaction: makes the key the caller's — a new row, or an
 * expired one taken over — with no answer yet.  *claimed false: a live row
 * of another call exists (now row-locked by this transaction; read it with
 * idem_db_lookup).  Waits while another transaction holds the key's
 * uncommitted row; a wait past lock_timeout fails with err->code "55P03".
 * 0 ok, -1 with err.
 */
int idem_db_claim(struct db *db, const char *consumer_id, const char *key,
                  const char *fp, bool *claimed, struct app_err *err)
    __attribute__((warn_unused_result));

/* The live row of the key, if any (*row filled; idem_row_free it).
 * 0 ok, -1 with err. */
int idem_db_lookup(struct db *db, const char *consumer_id, const char *key,
                   const char *fp, struct idem_row *row, struct app_err *err)
    __attribute__((warn_unused_result));

/* In the transaction that claimed the key: its answer.  `body` is the
 * answer's body, NUL-terminated text (a JSON envelope holds no NUL byte).
 * 0 ok, -1 err. */
int idem_db_answer(struct db *db, const char *consumer_id, const char *key,
                   int status, const char *body, struct app_err *err)
    __attribute__((warn_unused_result));

/*
 * Outside a held transaction (after a handler that committed by itself):
 * inserts the key with its answer, or takes over an expired row.
 * *stored false when a live row of another call was there (kept).
 * 0 ok, -1 err.
 */
int idem_db_put(struct db *db, const char *consumer_id, const char *key,
                const char *fp, int status, const char *body, bool *stored,
                struct app_err *err) __attribute__((warn_unused_result));

/* The session advisory lock of a key: waits at most lock_timeout (then -1
 * with err->code "55P03").  0 ok, -1 err. */
int idem_db_lock(struct db *db, const char *consumer_id, const char *key,
                 struct app_err *err) __attribute__((warn_unused_result));
/* Releases it.  0 ok, -1 err (the caller drops the lock with the
 * connection then). */
int idem_db_unlock(struct db *db, const char *consumer_id, const char *key,
                   struct app_err *err) __attribute__((warn_unused_result));

/* Deletes up to `limit` expired rows, oldest first, skipping rows another
 * transaction has locked; *deleted says how many.  0 ok, -1 err. */
int idem_db_expire(struct db *db, long limit, long *deleted,
                   struct app_err *err) __attribute__((warn_unused_result));

#endif
