/*
 * tests/chaos/util.h — small helpers shared by the chaos tool's modules:
 * strict number parsing, whitespace tokenising, a string-keyed hash map
 * and a growable array (the clocks are common/clock.h).
 *
 * Pure (libc only): no I/O, no global state.
 */
#ifndef CHAOS_UTIL_H
#define CHAOS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A whole decimal integer (optional leading '-'), nothing else: true and
 * *out set, or false and *out untouched. */
bool chaos_parse_i64(const char *s, int64_t *out);
/* The same for a non-negative decimal number with an optional fraction
 * ("2", "0.5"). */
bool chaos_parse_double(const char *s, double *out);

/*
 * Splits `line` in place on spaces, tabs, CR and LF: up to `max` tokens
 * are stored in tok[] (borrowed pointers into line).  Returns the number
 * of tokens in the line, which may exceed max (the extra ones are not
 * stored).
 */
size_t chaos_split(char *line, char **tok, size_t max);

/* true when s is a canonical 8-4-4-4-12 hexadecimal UUID text. */
bool chaos_is_uuid(const char *s);

/* ---- strmap: string → int64 ------------------------------------------- */

/*
 * An open-addressing hash map.  Keys are copied (owned by the map); values
 * are int64.  strmap_free() releases everything and is safe on a zeroed
 * map and twice.
 */
struct strmap {
    char **keys; /* NULL = empty slot */
    int64_t *vals;
    size_t cap; /* a power of two, or 0 */
    size_t count;
};

#define STRMAP_INIT                                                            \
    {                                                                          \
        NULL, NULL, 0, 0                                                       \
    }

/* Looks key up: true and *val (when val != NULL) when present. */
bool strmap_get(const struct strmap *m, const char *key, int64_t *val);
/*
 * Returns the value slot of key, inserting it with `initial` when absent
 * (*inserted tells which, when not NULL); NULL on allocation failure.  The
 * pointer is valid until the next insertion.
 */
int64_t *strmap_slot(struct strmap *m, const char *key, int64_t initial,
                     bool *inserted);
/*
 * Iteration: start with *pos = 0; returns false at the end.  key is
 * borrowed (valid while the map is unchanged).
 */
bool strmap_next(const struct strmap *m, size_t *pos, const char **key,
                 int64_t *val);
void strmap_free(struct strmap *m);

/* ---- vec: a growable array of fixed-size elements --------------------- */

struct vec {
    void *items;
    size_t len;
    size_t cap;
    size_t size; /* bytes per element */
};

#define VEC_INIT(type)                                                         \
    {                                                                          \
        NULL, 0, 0, sizeof(type)                                               \
    }

/* Appends a copy of *item: 0, or -1 on allocation failure. */
int vec_push(struct vec *v, const void *item)
    __attribute__((warn_unused_result));
/* Element i (borrowed; valid until the next push). */
void *vec_at(const struct vec *v, size_t i);
void vec_free(struct vec *v);

#endif
