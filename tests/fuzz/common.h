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

/* Whether n bytes hold a control character: C0, DEL, or a C1 character
 * (U+0080..U+009F, UTF-8 C2 80..C2 9F). */
bool fuzz_has_control(const char *s, size_t n);

#endif
