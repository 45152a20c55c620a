/*
 * consumer/confirm.c — see confirm.h.
 */
#include "confirm.h"

#include "../fcgi-app/core/version.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* An answer bigger than this is not an envelope we need to read. */
#define CONFIRM_MAX_BODY (64 * 1024)

struct confirm_client {
    CURL *curl;
    char *url;                  /* base + /events/confirm-delivery */
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
    free(c->url);
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
    sb_append(&sb, base_url, n);
    sb_puts(&sb, "/events/confirm-delivery");
    c->url = sb_steal(&sb);

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
    if (h == NULL || (h = curl_slist_append(c->headers, "Expect:")) == NULL)
        goto fail;

    c->curl = curl_easy_init();
    if (c->url == NULL || c->curl == NULL)
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

/* The envelope's detail.status_description and data.deliver_status. */
static void
read_envelope(const struct strbuf *body, struct strbuf *why, bool ok)
{
    json_error_t jerr;
    json_t *root = json_loadb(sb_str(body), body->len, 0, &jerr);
    const char *text = NULL;
    if (ok)
        text = json_string_value(json_object_get(
            json_object_get(root, "data"), "deliver_status"));
    else
        text = json_string_value(json_object_get(
            json_object_get(root, "detail"), "status_description"));
    if (text != NULL)
        sb_puts(why, text);
    else if (!ok)
        sb_puts(why, "no envelope in the answer");
    json_decref(root);
}

enum confirm_outcome
confirm_send(struct confirm_client *c, const struct confirm_request *req,
             long *http_status, struct strbuf *why)
{
    struct strbuf body = STRBUF_INIT, rid = STRBUF_INIT;
    struct curl_slist *headers = NULL;
    char *payload = NULL;
    json_t *obj = NULL;
    enum confirm_outcome out = CONFIRM_RETRY;

    *http_status = 0;
    obj = json_pack("{s:s, s:s}", "event_id", req->event_id, "status",
                    req->status);
    if (obj != NULL && req->received_at != NULL)
        json_object_set_new(obj, "received_at",
                            json_string(req->received_at));
    if (obj != NULL && req->failure_reason != NULL)
        json_object_set_new(obj, "failure_reason",
                            json_string(req->failure_reason));
    payload = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (payload == NULL) {
        sb_puts(why, "out of memory building the confirmation");
        goto out;
    }

    /* Our own request id, so the service's log line of this call can be
     * found from the event id. */
    sb_printf(&rid, "X-Request-ID: fintegrate-consumer:%s", req->event_id);
    headers = rid.oom ? NULL : curl_slist_append(NULL, sb_str(&rid));
    /* the client's headers first, then ours: chain them for this call */
    struct curl_slist *all = headers;
    if (all != NULL)
        all->next = c->headers;

    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, all ? all : c->headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT,
                     "fintegrate-consumer/" FINTEGRATE_VERSION);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->timeout_ms < 3000 ? c->timeout_ms : 3000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    c->errbuf[0] = '\0';

    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        sb_printf(why, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        out = confirm_classify(false, 0);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http_status);
    out = confirm_classify(true, *http_status);
    read_envelope(&body, why, out == CONFIRM_OK);
out:
    if (headers != NULL) {
        headers->next = NULL; /* the client's own list is not ours */
        curl_slist_free_all(headers);
    }
    json_decref(obj);
    free(payload);
    sb_free(&body);
    sb_free(&rid);
    return out;
}
