/*
 * tests/chaos/util.c — see util.h.
 */
#include "util.h"
#include "common/hash.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool
chaos_parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

bool
chaos_parse_double(const char *s, double *out)
{
    char *end = NULL;
    if (s == NULL || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return false;
    *out = v;
    return true;
}

static bool
is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

size_t
chaos_split(char *line, char **tok, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        while (*p != '\0' && is_sep(*p))
            p++;
        if (*p == '\0')
            break;
        if (n < max)
            tok[n] = p;
        n++;
        while (*p != '\0' && !is_sep(*p))
            p++;
        if (*p == '\0')
            break;
        *p++ = '\0';
    }
    return n;
}

bool
chaos_is_uuid(const char *s)
{
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!isxdigit((unsigned char)c)) {
            return false;
        }
    }
    return s[36] == '\0';
}

/* ---- strmap ------------------------------------------------------------ */

static size_t
find_slot(char *const *keys, size_t cap, const char *key)
{
    size_t i = (size_t)text_hash(key) & (cap - 1);
    while (keys[i] != NULL && strcmp(keys[i], key) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

bool
strmap_get(const struct strmap *m, const char *key, int64_t *val)
{
    if (m->cap == 0)
        return false;
    size_t i = find_slot(m->keys, m->cap, key);
    if (m->keys[i] == NULL)
        return false;
    if (val != NULL)
        *val = m->vals[i];
    return true;
}

static int
strmap_grow(struct strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    char **keys = calloc(cap, sizeof *keys);
    int64_t *vals = calloc(cap, sizeof *vals);
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == NULL)
            continue;
        size_t j = find_slot(keys, cap, m->keys[i]);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

int64_t *
strmap_slot(struct strmap *m, const char *key, int64_t initial, bool *inserted)
{
    /* keep the load factor under 1/2 */
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m) < 0)
        return NULL;
    size_t i = find_slot(m->keys, m->cap, key);
    if (m->keys[i] == NULL) {
        char *copy = strdup(key);
        if (copy == NULL)
            return NULL;
        m->keys[i] = copy;
        m->vals[i] = initial;
        m->count++;
        if (inserted != NULL)
            *inserted = true;
    } else if (inserted != NULL) {
        *inserted = false;
    }
    return &m->vals[i];
}

bool
strmap_next(const struct strmap *m, size_t *pos, const char **key, int64_t *val)
{
    while (*pos < m->cap) {
        size_t i = (*pos)++;
        if (m->keys[i] != NULL) {
            *key = m->keys[i];
            *val = m->vals[i];
            return true;
        }
    }
    return false;
}

void
strmap_free(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = 0;
    m->count = 0;
}

/* ---- vec --------------------------------------------------------------- */

int
vec_push(struct vec *v, const void *item)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        if (cap > ((size_t)-1) / v->size)
            return -1;
        void *n = realloc(v->items, cap * v->size);
        if (n == NULL)
            return -1;
        v->items = n;
        v->cap = cap;
    }
    memcpy((char *)v->items + v->len * v->size, item, v->size);
    v->len++;
    return 0;
}

void *
vec_at(const struct vec *v, size_t i)
{
    return (char *)v->items + i * v->size;
}

void
vec_free(struct vec *v)
{
    free(v->items);
    v->items = NULL;
    v->len = 0;
    v->cap = 0;
}
