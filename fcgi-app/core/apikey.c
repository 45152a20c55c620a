/*
 * fcgi-app/core/apikey.c — see apikey.h.
 */
#include "apikey.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

void
base64url_encode(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = abc[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = abc[v & 63];
    }
    out[o] = '\0';
}

int
apikey_generate(char out[APIKEY_LEN + 1])
{
    unsigned char raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    out[0] = 'f', out[1] = 'k', out[2] = '_';
    base64url_encode(raw, sizeof raw, out + 3);
    explicit_bzero(raw, sizeof raw);
    return 0;
}

void
apikey_prefix(const char *key, char out[APIKEY_PREFIX_LEN + 1])
{
    size_t n = strnlen(key, APIKEY_PREFIX_LEN);
    memcpy(out, key, n);
    out[n] = '\0';
}
