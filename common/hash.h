/*
 * common/hash.h — the hash of the in-memory tables (the consumer program's
 * state, the chaos tool's maps): FNV-1a, 64 bits.
 */
#ifndef FI_COMMON_HASH_H
#define FI_COMMON_HASH_H

#include <stdint.h>

/* FNV-1a of a NUL-terminated string. */
uint64_t text_hash(const char *s);

#endif
