/*
 * consumer/confirm.h — the consumer program's client for the Fintegrate
 * API, over libcurl: POST /events/confirm-delivery (docs/API.md §5.6), and
 * a start-up check of whose key it holds.
 *
 * One client keeps one curl handle, so consecutive confirmations reuse the
 * HTTP connection.  The API key is sent as X-API-Key and never appears in
 * anything this module returns or logs; the client wipes its copies on
 * free.
 *
 * What an answer means for the message (confirm_classify, pure):
 *   CONFIRM_OK       2xx: recorded (a repeated confirmation is 200 too);
 *   CONFIRM_RETRY    no answer (refused, timeout, DNS), 408, 429, 5xx:
 *                    transient — the message goes back to the queue;
 *   CONFIRM_AUTH     401, 403: the key or consumer is refused — every
 *                    later confirmation would fail the same way;
 *   CONFIRM_REFUSED  any other 4xx (404: the service does not know the
 *                    event, or it is another consumer's; 422): retrying
 *                    cannot help.
 *
 * Ownership: confirm_client_new copies its arguments; the returned client
 * is owned (confirm_client_free, safe on NULL).  The caller calls
 * curl_global_init once before the first client.
 */
#ifndef FC_CONFIRM_H
#define FC_CONFIRM_H

#include "common/strbuf.h"

#include <stdbool.h>

enum confirm_outcome {
    CONFIRM_OK = 0,
    CONFIRM_RETRY,
    CONFIRM_AUTH,
    CONFIRM_REFUSED,
};

struct confirm_client;

/* base_url like "http://127.0.0.1:8080" (a trailing '/' is fine).  NULL on
 * out of memory. */
struct confirm_client *confirm_client_new(const char *base_url,
                                          const char *api_key, long timeout_ms);
void confirm_client_free(struct confirm_client *c);

struct confirm_request {
    const char *event_id;
    const char *status;         /* "received", "processed" or "failed" */
    const char *received_at;    /* ISO 8601, or NULL */
    const char *failure_reason; /* for "failed", or NULL */
};

/*
 * Sends one confirmation and classifies the answer.  *http_status is the
 * HTTP status (0 when there was no answer).  `why` gets one sentence for
 * the log when the outcome is not CONFIRM_OK (the service's
 * status_description, or the transport error), and the new deliver_status
 * when it is.
 */
enum confirm_outcome confirm_send(struct confirm_client *c,
                                  const struct confirm_request *req,
                                  long *http_status, struct strbuf *why);

/*
 * Which consumer the API key belongs to: GET /consumer/api-key (the key in
 * a JSON body, never in the URL), then GET /consumer/data ("self" reads
 * are allowed).  CONFIRM_OK with the consumer_name in name_out; otherwise
 * the outcome of the call that failed, with `why`.
 */
enum confirm_outcome confirm_whoami(struct confirm_client *c, char name_out[64],
                                    long *http_status, struct strbuf *why);

/* The table above: transport_ok false means no HTTP answer at all. */
enum confirm_outcome confirm_classify(bool transport_ok, long http_status);

/* "ok", "retry", "auth", "refused". */
const char *confirm_outcome_name(enum confirm_outcome o);

#endif
