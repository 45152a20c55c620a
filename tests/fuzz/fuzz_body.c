/*
 * tests/fuzz/fuzz_body.c — libFuzzer target: a request body of arbitrary
 * bytes through what the pipeline does with it before a handler runs:
 * request_input (a POST) → body_parse → validate_input with the field specs
 * of every route of the service → the envelope.  Also the Idempotency-Key
 * fingerprint's canonical form of the same body.
 *
 * Checks: a refused body is 400 or 422 with a sentence and no object; an
 * accepted one is an object; validation either fails with a 422 sentence
 * or yields an object holding only the route's fields; every answer renders
 * to an envelope whose status_code is the error's status and whose body is
 * valid JSON (common.h).  No database: the handlers are never called.
 */
#include "common.h"

#include "http/idempotency.h"
#include "http/request.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct app_err err = APP_ERR_INIT;
    json_t *in = NULL;
    bool from_query = true;

    if (size > REQUEST_MAX_BODY)
        return 0;
    /* the body as request_read leaves it: a NUL-terminated copy */
    char *body = malloc(size + 1);
    FUZZ_CHECK(body != NULL, "out of memory");
    memcpy(body, data, size);
    body[size] = '\0';

    struct strbuf canon = STRBUF_INIT;
    FUZZ_CHECK(idem_canonical_body(body, size, &canon) >= 0 && !canon.oom,
               "canonical body failed");
    sb_free(&canon);

    struct request r = {.method = "POST",
                        .path = "/",
                        .query = "",
                        .body = size ? body : NULL,
                        .body_len = size};
    if (request_input(&r, &in, &from_query, &err) < 0) {
        FUZZ_CHECK(in == NULL, "an input with an error");
        FUZZ_CHECK(err.status == 400 || err.status == 422, "status %d",
                   err.status);
        fuzz_check_error(&err);
        goto out;
    }
    FUZZ_CHECK(!from_query && json_is_object(in), "not an object");

    fuzz_validate_routes(in, false, true);
out:
    json_decref(in);
    err_clear(&err);
    free(body);
    return 0;
}
