/*
 * fcgi-app/http/auth.h — X-API-Key → SHA-256 → active key → consumer.
 *
 * Results are cached per worker for FINTEGRATE_KEY_CACHE_SECONDS (at most
 * 5, default 2), so a deactivated key or consumer stops working within that
 * time; the expiry instant itself is checked on every request.  Unknown
 * keys are never cached.  The key text is hashed at once and never stored
 * or logged.
 */
#ifndef FI_AUTH_H
#define FI_AUTH_H

#include "../core/app_err.h"
#include "../db/db.h"

#include <stdbool.h>

/* The system consumer: the administrator. */
#define SYSTEM_CONSUMER_ID "00000000-0000-0000-0000-000000000001"

struct caller {
    char consumer_id[37];
    char consumer_name[64];
    bool is_admin;
};

/*
 * Authenticates `api_key` (NULL = header missing).  0 ok with *caller
 * filled; -1 with 401 (missing, unknown, expired, deactivated key), 403
 * (consumer deactivated) or 503 in `err`.
 */
int auth_authenticate(struct db *db, const char *api_key, long cache_seconds,
                      struct caller *caller, struct app_err *err)
    __attribute__((warn_unused_result));

/* Forgets every cached key (after SIGHUP, and in tests). */
void auth_cache_clear(void);

#endif
