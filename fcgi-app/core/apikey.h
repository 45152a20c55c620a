/*
 * fcgi-app/core/apikey.h — API key material: generation and display prefix.
 *
 * A key is "fk_" + 43 base64url characters: 256 bits from the kernel's
 * CSPRNG (getrandom).  Only its SHA-256 (text.h, sha256_hex) and its first
 * APIKEY_PREFIX_LEN characters are ever stored.
 */
#ifndef FI_APIKEY_H
#define FI_APIKEY_H

#include <stddef.h>

#define APIKEY_LEN 46        /* "fk_" + 43 */
#define APIKEY_PREFIX_LEN 11 /* "fk_" + 8 */

/* Writes a new key into out[APIKEY_LEN + 1].  0 ok, -1 if the OS could not
 * supply random bytes. */
int apikey_generate(char out[APIKEY_LEN + 1])
    __attribute__((warn_unused_result));

/* Writes the display prefix of `key` into out[APIKEY_PREFIX_LEN + 1]. */
void apikey_prefix(const char *key, char out[APIKEY_PREFIX_LEN + 1]);

/* base64url without padding of n bytes into out (4*ceil(n/3) + 1 bytes). */
void base64url_encode(const unsigned char *in, size_t n, char *out);

#endif
