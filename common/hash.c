/*
 * common/hash.c — see hash.h.
 */
#include "hash.h"

uint64_t
text_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a offset basis */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL; /* FNV-1a prime */
    }
    return h;
}
