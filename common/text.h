/*
 * common/text.h — small pure text helpers: UTF-8, UUIDs, trimming,
 * percent-decoding, request ids.  No allocation unless stated; no I/O.
 */
#ifndef FI_TEXT_H
#define FI_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Code points in valid UTF-8 `s` of `n` bytes; -1 when not valid UTF-8. */
long utf8_length(const char *s, size_t n);

/* 8-4-4-4-12 hex, any case. */
bool is_uuid_text(const char *s, size_t n);
/* Writes the lower-case form of a valid UUID into out[37]. */
void uuid_lower(const char *s, char out[37]);
/* A fresh random (v4) UUID, lower-case, into out[37]. */
void uuid_new(char out[37]);

/* Trims Unicode-agnostic ASCII whitespace (space, \t \n \v \f \r) from both
 * ends: returns the start inside `s` and sets *len to the trimmed length. */
const char *trim_ascii_space(const char *s, size_t n, size_t *len);

/*
 * Percent-decodes `n` bytes of a query-string component ('+' = space) into
 * a new malloc'd buffer (caller frees), length in *out_len.  NULL on a
 * malformed escape or allocation failure.
 */
char *percent_decode(const char *s, size_t n, size_t *out_len);

/* A client X-Request-ID we keep: 1-128 of [A-Za-z0-9._:-]. */
bool is_valid_request_id(const char *s);

/* The contract's API key names: the key a client sent, for caching and
 * hashing.  Writes the lower-case hex SHA-256 of `key` into out[65]. */
void sha256_hex(const char *key, size_t n, char out[65]);

#endif
