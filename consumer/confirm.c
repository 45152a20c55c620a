/*
 * consumer/confirm.c — see confirm.h.
 */
#include "confirm.h"

#include "common/version.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* An answer bigger than this is not an envelope we need to read. */
#define CONFIRM_MAX_BODY ((size_t)64 * 1024)

struct confirm_client {
    CURL *curl;
    char *base;                 /* base URL without a trailing '/' */
    char *key;                  /* secret: wiped on free */
    struct curl_slist *headers; /* holds the key: wiped on free */
    long timeout_ms;
    char errbuf[CURL_ERROR_SIZE];
};

enum confirm_outcome
confirm_classify(bool transport_ok, long http_status)
{
    if (!transport_ok)
        return CONFIRM_RETRY;
    if (http_status >= 200 && http_status < 300)
        return CONFIRM_OK;
    if (http_status == 401 || http_status == 403)
        return CONFIRM_AUTH;
    if (http_status == 408 || http_status == 429 || http_status >= 500 ||
        http_status < 200)
        return CONFIRM_RETRY;
    return CONFIRM_REFUSED;
}

const char *
confirm_outcome_name(enum confirm_outcome o)
{
    switch (o) {
    case CONFIRM_OK:
        return "ok";
    case CONFIRM_RETRY:
        return "retry";
    case CONFIRM_AUTH:
        return "auth";
    case CONFIRM_REFUSED:
        return "refused";
    }
    return "retry";
}

static void
wipe_headers(struct curl_slist *h)
{
    for (struct curl_slist *p = h; p != NULL; p = p->next)
        explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(h);
}

void
confirm_client_free(struct confirm_client *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    wipe_headers(c->headers);
    if (c->key != NULL)
        explicit_bzero(c->key, strlen(c->key));
    free(c->key);
    free(c->base);
    free(c);
}

struct confirm_client *
confirm_client_new(const char *base_url, const char *api_key, long timeout_ms)
{
    struct confirm_client *c = calloc(1, sizeof *c);
    struct strbuf sb = STRBUF_INIT;
    struct curl_slist *h;

    if (c == NULL)
        return NULL;
    c->timeout_ms = timeout_ms;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    c->base = strndup(base_url, n);
    c->key = strdup(api_key);
    if (c->base == NULL || c->key == NULL)
        goto fail;

    sb_printf(&sb, "X-API-Key: %s", api_key);
    h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h != NULL) {
        c->headers = h;
        h = sb.oom ? NULL : curl_slist_append(c->headers, sb_str(&sb));
    }
    if (sb.buf != NULL)
        explicit_bzero(sb.buf, sb.cap);
    sb_free(&sb);
    /* no "Expect: 100-continue" round trip for small bodies */
    if (h == NULL || curl_slist_append(c->headers, "Expect:") == NULL)
        goto fail;

    c->curl = curl_easy_init();
    if (c->curl == NULL)
        goto fail;
    return c;
fail:
    confirm_client_free(c);
    return NULL;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct strbuf *body = userdata;
    size_t n = size * nmemb;
    if (body->len + n <= CONFIRM_MAX_BODY)
        sb_append(body, ptr, n);
    return n;
}

/*
 * One request to base + path with our headers (plus request_id as
 * X-Request-ID when not NULL) and `body` (may be NULL).  Returns the
 * outcome; *http is the status (0 without an answer) and *envelope the
 * parsed answer (owned, may be NULL).  `why` gets the transport error, or
 * the envelope's status_description when the outcome is not CONFIRM_OK.
 */
static enum confirm_outcome
request(struct confirm_client *c, const char *method, const char *path,
        const char *body, const char *request_id, long *http, json_t **envelope,
        struct strbuf *why)
{
    struct strbuf url = STRBUF_INIT, answer = STRBUF_INIT, rid = STRBUF_INIT;
    struct curl_slist *mine = NULL;
    enum confirm_outcome out = CONFIRM_RETRY;
    json_error_t jerr;

    *http = 0;
    *envelope = NULL;
    sb_printf(&url, "%s%s", c->base, path);
    if (request_id != NULL) {
        /* ours first, chained to the client's list for this call only */
        sb_printf(&rid, "X-Request-ID: %s", request_id);
        mine = rid.oom ? NULL : curl_slist_append(NULL, sb_str(&rid));
        if (mine != NULL)
            mine->next = c->headers;
    }
    if (url.oom) {
        sb_puts(why, "out of memory");
        goto out;
    }

    CURL *h = c->curl;
    curl_easy_reset(h); /* keeps the connection cache */
    curl_easy_setopt(h, CURLOPT_URL, sb_str(&url));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, mine ? mine : c->headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT,
                     "fintegrate-consumer/" FINTEGRATE_VERSION);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->timeout_ms < 3000 ? c->timeout_ms : 3000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    c->errbuf[0] = '\0';

    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        sb_puts(why, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        out = confirm_classify(false, 0);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
    out = confirm_classify(true, *http);
    *envelope = json_loadb(sb_str(&answer), answer.len, 0, &jerr);
    if (out != CONFIRM_OK) {
        const char *d = json_string_value(json_object_get(
            json_object_get(*envelope, "detail"), "status_description"));
        sb_puts(why, d ? d : "no envelope in the answer");
    }
out:
    if (mine != NULL) {
        mine->next = NULL; /* the client's own list is not ours to free */
        curl_slist_free_all(mine);
    }
    sb_free(&url);
    sb_free(&answer);
    sb_free(&rid);
    return out;
}

enum confirm_outcome
confirm_send(struct confirm_client *c, const struct confirm_request *req,
             long *http_status, struct strbuf *why)
{
    struct strbuf rid = STRBUF_INIT;
    json_t *envelope = NULL;
    char *payload = NULL;
    enum confirm_outcome out = CONFIRM_RETRY;

    *http_status = 0;
    json_t *obj = json_pack("{s:s, s:s}", "event_id", req->event_id, "status",
                            req->status);
    if (obj != NULL && req->received_at != NULL)
        json_object_set_new(obj, "received_at", json_string(req->received_at));
    if (obj != NULL && req->failure_reason != NULL)
        json_object_set_new(obj, "failure_reason",
                            json_string(req->failure_reason));
    payload = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (payload == NULL) {
        sb_puts(why, "out of memory building the confirmation");
        goto out;
    }
    /* so the service's log line of this call is found from the event */
    sb_printf(&rid, "fintegrate-consumer:%s", req->event_id);
    out = request(c, "POST", "/events/confirm-delivery", payload, sb_str(&rid),
                  http_status, &envelope, why);
    if (out == CONFIRM_OK) {
        const char *s = json_string_value(json_object_get(
            json_object_get(envelope, "data"), "deliver_status"));
        sb_puts(why, s ? s : "?");
    }
out:
    json_decref(envelope);
    free(payload);
    sb_free(&rid);
    return out;
}

/* data.<field> of an envelope as a string, or NULL (borrowed). */
static const char *
data_str(const json_t *envelope, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(envelope, "data"), field));
}

enum confirm_outcome
confirm_whoami(struct confirm_client *c, char name_out[64], long *http_status,
               struct strbuf *why)
{
    json_t *envelope = NULL;
    char *body = NULL;
    char path[128];
    enum confirm_outcome out;

    name_out[0] = '\0';
    /* GET with a JSON body (docs/API.md §2.2: read when the query string
     * is empty), so the key never travels in a URL */
    json_t *obj = json_pack("{s:s}", "api_key", c->key);
    body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (body == NULL) {
        sb_puts(why, "out of memory");
        return CONFIRM_RETRY;
    }
    out = request(c, "GET", "/consumer/api-key", body, NULL, http_status,
                  &envelope, why);
    explicit_bzero(body, strlen(body));
    free(body);
    if (out != CONFIRM_OK)
        goto out;
    const char *id = data_str(envelope, "consumer_id");
    if (id == NULL || strlen(id) != 36) {
        sb_puts(why, "GET /consumer/api-key answered without a consumer_id");
        out = CONFIRM_REFUSED;
        goto out;
    }
    snprintf(path, sizeof path, "/consumer/data?consumer_id=%s", id);
    json_decref(envelope);
    out = request(c, "GET", path, NULL, NULL, http_status, &envelope, why);
    if (out != CONFIRM_OK)
        goto out;
    const char *name = data_str(envelope, "consumer_name");
    if (name == NULL || strlen(name) >= 64) {
        sb_puts(why, "GET /consumer/data answered without a consumer_name");
        out = CONFIRM_REFUSED;
        goto out;
    }
    memcpy(name_out, name, strlen(name) + 1);
out:
    json_decref(envelope);
    return out;
}
