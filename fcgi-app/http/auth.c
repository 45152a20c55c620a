/*
 * fcgi-app/http/auth.c — see auth.h.
 */
#include "auth.h"
#include "common/clock.h"
#include "common/text.h"
#include "../db/api_keys_db.h"

#include <string.h>
#include <time.h>

#define AUTH_CACHE_SLOTS 64

struct cache_entry {
    char hash[65];
    struct key_lookup key;
    time_t fetched; /* CLOCK_MONOTONIC seconds; 0 = empty slot */
};

static struct cache_entry cache[AUTH_CACHE_SLOTS];

static time_t
mono_now(void)
{
    return (time_t)(mono_ms() / 1000) + 1; /* never 0: an empty slot */
}

void
auth_cache_clear(void)
{
    memset(cache, 0, sizeof cache);
}

static struct cache_entry *
cache_find(const char *hash, long ttl)
{
    time_t now = mono_now();
    for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++) {
        if (cache[i].fetched != 0 && strcmp(cache[i].hash, hash) == 0) {
            if (now - cache[i].fetched < ttl)
                return &cache[i];
            cache[i].fetched = 0;
            return NULL;
        }
    }
    return NULL;
}

static void
cache_store(const char *hash, const struct key_lookup *key)
{
    size_t victim = 0;
    for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++) {
        if (cache[i].fetched == 0) {
            victim = i;
            break;
        }
        if (cache[i].fetched < cache[victim].fetched)
            victim = i;
    }
    memcpy(cache[victim].hash, hash, sizeof cache[victim].hash);
    cache[victim].key = *key;
    cache[victim].fetched = mono_now();
}

int
auth_authenticate(struct db *db, const char *api_key, long cache_seconds,
                  struct caller *caller, struct app_err *err)
{
    struct key_lookup fresh;
    const struct key_lookup *key;
    char hash[65];

    if (api_key == NULL || api_key[0] == '\0') {
        err_set(err, 401, "Missing X-API-Key header");
        return -1;
    }
    sha256_hex(api_key, strlen(api_key), hash);

    struct cache_entry *hit =
        cache_seconds > 0 ? cache_find(hash, cache_seconds) : NULL;
    if (hit != NULL) {
        key = &hit->key;
    } else {
        if (api_keys_db_lookup(db, hash, &fresh, err) < 0)
            return -1;
        if (!fresh.found) {
            err_set(err, 401, "Invalid API key");
            return -1;
        }
        if (cache_seconds > 0)
            cache_store(hash, &fresh);
        key = &fresh;
    }

    bool expired =
        strcmp(key->key_status, "expired") == 0 ||
        (strcmp(key->key_status, "active") == 0 &&
         (key->past_expiry || key->expires_epoch <= (double)time(NULL)));
    if (expired) {
        if (strcmp(key->key_status, "active") == 0)
            api_keys_db_mark_expired(db, hash);
        err_set(err, 401, "API key expired");
        return -1;
    }
    if (strcmp(key->key_status, "active") != 0) {
        err_set(err, 401, "API key deactivated");
        return -1;
    }
    if (!key->consumer_active) {
        err_set(err, 403, "Consumer \"%s\" is deactivated", key->consumer_name);
        return -1;
    }
    memcpy(caller->consumer_id, key->consumer_id, sizeof caller->consumer_id);
    memcpy(caller->consumer_name, key->consumer_name,
           sizeof caller->consumer_name);
    caller->is_admin = strcmp(key->consumer_id, SYSTEM_CONSUMER_ID) == 0;
    return 0;
}
