/*
 * fcgi-app/handlers/api_keys.c — POST /consumer/api-key (issue or rotate),
 * GET /consumer/api-key, POST /consumer/deactivate-api-key.
 *
 * The full key exists only in the response that creates it; the database
 * keeps its SHA-256 and an 11-character display prefix.  Rotation
 * deactivates the consumer's active key in the same transaction (even an
 * expired one), and each key change writes its event for the system
 * consumer.
 */
#include "handler.h"
#include "../core/apikey.h"
#include "common/text.h"
#include "../db/api_keys_db.h"
#include "../db/consumers_db.h"

#include <stdio.h>
#include <string.h>

/* The shortest lifetime of a system consumer's key (docs/API.md §4.2): a
 * rotation must not lock the administrator out. */
#define SYSTEM_KEY_MIN_SECONDS 86400LL

/* Seconds until expiry from expires_in_days / expires_in_seconds. */
static int
expiry_seconds(const struct ctx *c, const char *consumer_id, char out[24],
               struct app_err *err)
{
    json_t *days = json_object_get(c->in, "expires_in_days");
    json_t *secs = json_object_get(c->in, "expires_in_seconds");
    if (days != NULL && secs != NULL) {
        err_set(err, 422,
                "Give either expires_in_days or expires_in_seconds, "
                "not both");
        return -1;
    }
    long long s =
        secs ? (long long)json_integer_value(secs)
             : (days ? (long long)json_integer_value(days) : 365) * 86400LL;
    if (s < SYSTEM_KEY_MIN_SECONDS &&
        strcmp(consumer_id, SYSTEM_CONSUMER_ID) == 0) {
        err_set(err, 422,
                "expires_in_seconds must be at least %lld (one day) for the "
                "system consumer's key, so that a rotation cannot lock the "
                "administrator out (got %lld)",
                SYSTEM_KEY_MIN_SECONDS, s);
        return -1;
    }
    snprintf(out, 24, "%lld", s);
    return 0;
}

int
api_keys_create(struct ctx *c, json_t **data, struct app_err *err)
{
    struct consumer co;
    json_t *old = NULL, *ev = NULL;
    char key[APIKEY_LEN + 1], prefix[APIKEY_PREFIX_LEN + 1], hash[65];
    char seconds[24], expires_at[40], event_id[37];
    const char *id = ctx_str(c, "consumer_id");
    size_t i;
    json_t *o;
    int status = 500;

    if (expiry_seconds(c, id, seconds, err) < 0)
        goto out;
    if (apikey_generate(key) < 0) {
        err_set(err, 503,
                "The system could not supply random bytes for a "
                "key; please retry");
        goto out;
    }
    apikey_prefix(key, prefix);
    sha256_hex(key, strlen(key), hash);

    if (consumer_begin_locked(c, id, &co, err) < 0)
        goto out;
    if (strcmp(co.status, "ACTIVE") != 0) {
        err_set(err, 409,
                "Consumer %s is %s; reactivate it before issuing a "
                "key",
                id, co.status);
        goto out;
    }
    if (api_keys_db_deactivate_all(c->db, id, &old, err) < 0)
        goto out;
    json_array_foreach(old, i, o)
    {
        ev = json_pack("{s:s, s:s, s:O, s:O}", "consumer_id", co.consumer_id,
                       "consumer_name", co.consumer_name, "api_key_prefix",
                       json_object_get(o, "api_key_prefix"), "previous_status",
                       json_object_get(o, "previous_status"));
        if (system_event(c, "api_key_deactivation", ev, event_id, err) < 0)
            goto out;
        json_decref(ev);
        ev = NULL;
    }
    if (api_keys_db_insert(c->db, id, hash, prefix, seconds, expires_at, err) <
        0)
        goto out;
    ev = json_pack("{s:s, s:s, s:s, s:s}", "consumer_id", co.consumer_id,
                   "consumer_name", co.consumer_name, "api_key_prefix", prefix,
                   "expires_at", expires_at);
    if (system_event(c, "api_key_creation", ev, event_id, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto out;
    *data = json_pack("{s:s, s:s, s:s, s:s}", "api_key", key, "api_key_prefix",
                      prefix, "consumer_id", co.consumer_id, "expires_at",
                      expires_at);
    status = 201;
out:
    explicit_bzero(key, sizeof key);
    json_decref(old);
    json_decref(ev);
    return handler_done(c, status, err);
}

int
api_keys_get(struct ctx *c, json_t **data, struct app_err *err)
{
    struct key_row k;
    char hash[65];
    const char *key = ctx_str(c, "api_key");

    sha256_hex(key, strlen(key), hash);
    if (api_keys_db_get(c->db, hash, false, &k, err) < 0)
        return err->status;
    /* A consumer may read any key of its own (its previous, deactivated or
     * expired ones too, docs/API.md §4.4); anything else is 403 whether or
     * not it exists (no probing for other keys). */
    if (!c->caller->is_admin &&
        (!k.found || strcmp(k.consumer_id, c->caller->consumer_id) != 0)) {
        err_set(err, 403, "A consumer may read only its own API keys");
        return 403;
    }
    if (!k.found) {
        err_set(err, 404, "API key not found");
        return 404;
    }
    if (k.stored_active && strcmp(k.status, "expired") == 0)
        api_keys_db_mark_expired(c->db, hash);
    *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "api_key_prefix",
                      k.api_key_prefix, "consumer_id", k.consumer_id, "status",
                      k.status, "created_at", k.created_at, "expires_at",
                      k.expires_at, "updated_at", k.updated_at);
    return 200;
}

int
api_keys_deactivate(struct ctx *c, json_t **data, struct app_err *err)
{
    struct key_row k;
    struct consumer co;
    json_t *ev = NULL;
    char hash[65], event_id[37];
    const char *key = ctx_str(c, "api_key");
    long usable = 0;
    int status = 500;

    sha256_hex(key, strlen(key), hash);
    if (db_begin(c->db, err) < 0 ||
        api_keys_db_get(c->db, hash, true, &k, err) < 0)
        goto out;
    if (!k.found) {
        err_set(err, 404, "API key not found");
        goto out;
    }
    if (strcmp(k.status, "deactivated") == 0) {
        err_set(err, 409, "API key %s... is already deactivated",
                k.api_key_prefix);
        goto out;
    }
    if (strcmp(k.consumer_id, SYSTEM_CONSUMER_ID) == 0) {
        if (api_keys_db_count_usable(c->db, k.consumer_id, &usable, err) < 0)
            goto out;
        if (usable <= 1 && strcmp(k.status, "active") == 0) {
            err_set(err, 403,
                    "The system consumer's only active key cannot "
                    "be deactivated; rotate it with POST /consumer/api-key");
            goto out;
        }
    }
    if (consumers_db_get(c->db, k.consumer_id, &co, err) < 0 ||
        api_keys_db_deactivate(c->db, hash, err) < 0)
        goto out;
    ev = json_pack("{s:s, s:s, s:s, s:s}", "consumer_id", k.consumer_id,
                   "consumer_name", co.consumer_name, "api_key_prefix",
                   k.api_key_prefix, "previous_status", k.status);
    if (system_event(c, "api_key_deactivation", ev, event_id, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto out;
    *data = json_object();
    status = 200;
out:
    json_decref(ev);
    return handler_done(c, status, err);
}
