/*
 * fcgi-app/db/idempotency_db.c — see idempotency_db.h.
 */
#include "idempotency_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE "created_at > now() - interval '" IDEM_DB_TTL "'"
#define EXPIRED "created_at <= now() - interval '" IDEM_DB_TTL "'"

/* ON CONFLICT ... WHERE: the existing row is taken over only when it has
 * expired; otherwise it is left as it is (and row-locked). */
DB_STMT(idem_claim, 3,
        "INSERT INTO idempotency_keys AS k (consumer_id, key, fingerprint) "
        "VALUES ($1::uuid, $2, decode($3, 'hex')) "
        "ON CONFLICT (consumer_id, key) DO UPDATE "
        "   SET fingerprint = EXCLUDED.fingerprint, status = NULL, "
        "       body = NULL, created_at = now() "
        " WHERE k." EXPIRED " RETURNING true");
DB_STMT(idem_lookup, 3,
        "SELECT fingerprint = decode($3, 'hex'), status, body "
        "  FROM idempotency_keys "
        " WHERE consumer_id = $1::uuid AND key = $2 AND " LIVE);
DB_STMT(idem_answer, 4,
        "UPDATE idempotency_keys SET status = $3::smallint, body = $4 "
        " WHERE consumer_id = $1::uuid AND key = $2");
DB_STMT(idem_put, 5,
        "INSERT INTO idempotency_keys AS k "
        "       (consumer_id, key, fingerprint, status, body) "
        "VALUES ($1::uuid, $2, decode($3, 'hex'), $4::smallint, $5) "
        "ON CONFLICT (consumer_id, key) DO UPDATE "
        "   SET fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, "
        "       body = EXCLUDED.body, created_at = now() "
        " WHERE k." EXPIRED " RETURNING true");
/* The two-int form: its own space, apart from the outbox's one-bigint
 * advisory lock.  A hash collision only makes two keys wait on each
 * other. */
DB_STMT(idem_lock, 2,
        "SELECT pg_advisory_lock(8008, hashtext($1 || ' ' || $2))");
DB_STMT(idem_unlock, 2,
        "SELECT pg_advisory_unlock(8008, hashtext($1 || ' ' || $2))");
DB_STMT(idem_expire, 1,
        "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY( "
        "  SELECT ctid FROM idempotency_keys WHERE " EXPIRED
        "   ORDER BY created_at LIMIT $1::int FOR UPDATE SKIP LOCKED))");

void
idem_row_free(struct idem_row *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

int
idem_db_claim(struct db *db, const char *consumer_id, const char *key,
              const char *fp, bool *claimed, struct app_err *err)
{
    const char *params[] = {consumer_id, key, fp};
    PGresult *res = db_exec(db, &idem_claim, params, err);
    if (res == NULL)
        return -1;
    *claimed = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

int
idem_db_lookup(struct db *db, const char *consumer_id, const char *key,
               const char *fp, struct idem_row *row, struct app_err *err)
{
    const char *params[] = {consumer_id, key, fp};
    memset(row, 0, sizeof *row);
    PGresult *res = db_exec(db, &idem_lookup, params, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1) {
        row->found = true;
        row->same = PQgetvalue(res, 0, 0)[0] == 't';
        if (!PQgetisnull(res, 0, 1) && !PQgetisnull(res, 0, 2)) {
            row->status = atoi(PQgetvalue(res, 0, 1));
            row->body_len = (size_t)PQgetlength(res, 0, 2);
            row->body = malloc(row->body_len + 1);
            if (row->body == NULL) {
                err_set(err, 500, "Out of memory reading a stored answer");
                rc = -1;
            } else {
                memcpy(row->body, PQgetvalue(res, 0, 2), row->body_len + 1);
            }
        }
    }
    PQclear(res);
    return rc;
}

int
idem_db_answer(struct db *db, const char *consumer_id, const char *key,
               int status, const char *body, struct app_err *err)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *params[] = {consumer_id, key, code, body};
    return db_exec_command(db, &idem_answer, params, err);
}

int
idem_db_put(struct db *db, const char *consumer_id, const char *key,
            const char *fp, int status, const char *body, bool *stored,
            struct app_err *err)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *params[] = {consumer_id, key, fp, code, body};
    PGresult *res = db_exec(db, &idem_put, params, err);
    if (res == NULL)
        return -1;
    *stored = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

int
idem_db_lock(struct db *db, const char *consumer_id, const char *key,
             struct app_err *err)
{
    const char *params[] = {consumer_id, key};
    return db_exec_command(db, &idem_lock, params, err);
}

int
idem_db_unlock(struct db *db, const char *consumer_id, const char *key,
               struct app_err *err)
{
    const char *params[] = {consumer_id, key};
    return db_exec_command(db, &idem_unlock, params, err);
}

int
idem_db_expire(struct db *db, long limit, long *deleted, struct app_err *err)
{
    char n[24];
    snprintf(n, sizeof n, "%ld", limit);
    const char *params[] = {n};
    PGresult *res = db_exec(db, &idem_expire, params, err);
    if (res == NULL)
        return -1;
    *deleted = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}
