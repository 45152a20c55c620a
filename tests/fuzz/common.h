/*
 * tests/fuzz/common.h — what the fuzz targets share: a check that aborts
 * with a message (libFuzzer and the replay then keep the input), and the
 * envelope check of docs/API.md §3.1 for the targets that render one.
 *
 * Linked into every target (tests/fuzz/fuzz_*.c) and every replay binary;
 * depends on http/envelope.h and jansson, nothing that needs a database or
 * a broker.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include "../../fcgi-app/core/app_err.h"
#include "../../fcgi-app/http/envelope.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Aborts with file, line, the condition and a printf-style note. */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__,      \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/*
 * Renders `env` and checks the answer: the Status line is env->status, no
 * header line holds a stray CR or LF, the body (as long as the return
 * says) is a JSON object {data: object, detail: {status_code: the status
 * as a string, status_name, status_description: non-empty strings}}, with
 * data {} on an error.
 */
void fuzz_check_envelope(const struct envelope *env);

/* An app_err as the pipeline renders it: a sentence, and an envelope whose
 * status is the error's (fuzz_check_envelope). */
void fuzz_check_error(const struct app_err *err);

/*
 * Validates `in` with the field specs of every route that takes input:
 * either a 422 with a sentence and no object, or an object that renders
 * (fuzz_check_envelope).  `only_spec_fields`: the object also holds
 * nothing but the route's fields and no error was set.
 */
void fuzz_validate_routes(const json_t *in, bool from_query,
                          bool only_spec_fields);

/* Whether n bytes hold a control character: C0, DEL, or a C1 character
 * (U+0080..U+009F, UTF-8 C2 80..C2 9F). */
bool fuzz_has_control(const char *s, size_t n);

#endif
