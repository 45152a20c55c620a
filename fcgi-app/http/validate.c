/*
 * fcgi-app/http/validate.c — see validate.h.
 */
#include "validate.h"
#include "common/strbuf.h"
#include "common/text.h"
#include "common/topology.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How a rejected value is quoted in a message: its JSON text, cut at 64
 * code points so a 60 KiB string does not come back in the error. */
static void
describe(struct strbuf *sb, const json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (text == NULL) {
        sb_puts(sb, "?");
        return;
    }
    size_t n = strlen(text);
    size_t cut = 0;
    long cps = 0;
    while (cut < n && cps < 64) {
        cut++;
        while (cut < n && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut++;
        cps++;
    }
    sb_append(sb, text, cut);
    if (cut < n)
        sb_puts(sb, "...");
    free(text);
}

static void
add_got(struct app_err *err, const char *rule, const json_t *v)
{
    struct strbuf sb = STRBUF_INIT;
    describe(&sb, v);
    err_add(err, 422, "%s (got %s)", rule, sb_str(&sb));
    sb_free(&sb);
}

static void
choices_text(struct strbuf *sb, const char *const *choices)
{
    for (size_t i = 0; choices[i] != NULL; i++) {
        if (i > 0)
            sb_puts(sb, ", ");
        sb_puts(sb, choices[i]);
    }
}

static bool
in_choices(const char *s, const char *const *choices)
{
    for (size_t i = 0; choices != NULL && choices[i] != NULL; i++)
        if (strcmp(s, choices[i]) == 0)
            return true;
    return false;
}

static const struct field_spec *
find_spec(const struct field_spec *specs, const char *name)
{
    for (; specs->name != NULL; specs++)
        if (strcmp(specs->name, name) == 0)
            return specs;
    return NULL;
}

static bool
is_tag_key(const char *s, size_t n)
{
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool
digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* ISO 8601 with a zone: YYYY-MM-DD[T ]hh:mm[:ss[.f{1,9}]](Z|+hh[:mm]|-hh[:mm]).
 * Field ranges (month 13) are left to the database, which rejects them. */
static bool
is_iso_timestamp(const char *s, size_t n)
{
    size_t i = 0;
    if (n < 17 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) ||
        s[7] != '-' || !digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2) ||
        s[13] != ':' || !digits(s + 14, 2))
        return false;
    i = 16;
    if (i < n && s[i] == ':') {
        if (n - i < 3 || !digits(s + i + 1, 2))
            return false;
        i += 3;
        if (i < n && s[i] == '.') {
            size_t f = ++i;
            while (i < n && s[i] >= '0' && s[i] <= '9')
                i++;
            if (i == f || i - f > 9)
                return false;
        }
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z'))
        return i + 1 == n;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        size_t z = n - i - 1;
        const char *t = s + i + 1;
        return (z == 2 && digits(t, 2)) || (z == 4 && digits(t, 4)) ||
               (z == 5 && digits(t, 2) && t[2] == ':' && digits(t + 3, 2));
    }
    return false;
}

/* Checks a string value of a string-like type; returns the normalised value
 * (new reference) or NULL after adding the problem to `err`. */
static json_t *
check_string(const char *name, enum field_type type, long min, long max,
             const char *const *choices, const json_t *v, struct app_err *err)
{
    if (!json_is_string(v)) {
        struct strbuf rule = STRBUF_INIT;
        sb_printf(&rule, "%s must be a string", name);
        add_got(err, sb_str(&rule), v);
        sb_free(&rule);
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (memchr(s, '\0', n) != NULL) {
        err_add(err, 422, "%s must not contain NUL characters", name);
        return NULL;
    }
    switch (type) {
    case FT_UUID: {
        if (!is_uuid_text(s, n)) {
            struct strbuf rule = STRBUF_INIT;
            sb_printf(&rule, "%s must be a UUID", name);
            add_got(err, sb_str(&rule), v);
            sb_free(&rule);
            return NULL;
        }
        char low[37];
        uuid_lower(s, low);
        return json_string(low);
    }
    case FT_ENUM:
        if (!in_choices(s, choices)) {
            struct strbuf rule = STRBUF_INIT;
            sb_printf(&rule, "%s must be one of ", name);
            choices_text(&rule, choices);
            add_got(err, sb_str(&rule), v);
            sb_free(&rule);
            return NULL;
        }
        return json_incref((json_t *)v);
    case FT_TAG_KEY:
        if (!is_tag_key(s, n)) {
            struct strbuf rule = STRBUF_INIT;
            sb_printf(&rule,
                      "%s must be 1 to 64 characters of A-Z, a-z, "
                      "0-9, '_', '.', '-'",
                      name);
            add_got(err, sb_str(&rule), v);
            sb_free(&rule);
            return NULL;
        }
        return json_incref((json_t *)v);
    case FT_CONSUMER_NAME:
        if (!is_consumer_name(s, n)) {
            struct strbuf rule = STRBUF_INIT;
            sb_printf(&rule,
                      "%s must match " CONSUMER_NAME_RULE " "
                      "(lower-case letters, digits, '_' and '-', starting "
                      "with a letter or digit, at most 63)",
                      name);
            add_got(err, sb_str(&rule), v);
            sb_free(&rule);
            return NULL;
        }
        return json_incref((json_t *)v);
    case FT_TIMESTAMP:
        if (!is_iso_timestamp(s, n)) {
            struct strbuf rule = STRBUF_INIT;
            sb_printf(&rule,
                      "%s must be an ISO 8601 timestamp with a time "
                      "zone",
                      name);
            add_got(err, sb_str(&rule), v);
            sb_free(&rule);
            return NULL;
        }
        return json_incref((json_t *)v);
    case FT_NAME: {
        size_t tn;
        const char *t = trim_ascii_space(s, n, &tn);
        long cps = utf8_length(t, tn);
        if (cps < min || cps > max) {
            err_add(err, 422,
                    "%s must be %ld to %ld characters after "
                    "trimming (got %ld)",
                    name, min, max, cps);
            return NULL;
        }
        return json_stringn(t, tn);
    }
    default: {
        long cps = utf8_length(s, n);
        if (cps < min || cps > max) {
            err_add(err, 422, "%s must be %ld to %ld characters (got %ld)",
                    name, min, max, cps);
            return NULL;
        }
        return json_incref((json_t *)v);
    }
    }
}

/* Decimal integer text, strictly: optional '-', digits, nothing else. */
static bool
parse_int_text(const char *s, long long *out)
{
    char *end;
    if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static json_t *
check_int(const struct field_spec *sp, const json_t *v, bool from_query,
          struct app_err *err)
{
    long long n = 0;
    bool ok;
    if (from_query && json_is_string(v))
        ok = parse_int_text(json_string_value(v), &n);
    else
        ok = json_is_integer(v) && (n = json_integer_value(v), true);
    if (!ok || n < sp->min || n > sp->max) {
        struct strbuf rule = STRBUF_INIT;
        sb_printf(&rule, "%s must be an integer between %ld and %ld", sp->name,
                  sp->min, sp->max);
        /* "?limit=0" reads like the JSON 0: (got 0), not (got "0") */
        json_t *shown = ok ? json_integer(n) : json_incref((json_t *)v);
        add_got(err, sb_str(&rule), shown);
        json_decref(shown);
        sb_free(&rule);
        return NULL;
    }
    return json_integer(n);
}

/* Query-string arrays: repeated parameters and comma-separated lists both
 * become one flat array of strings (new reference). */
static json_t *
flatten_query_list(const json_t *v)
{
    json_t *out = json_array();
    const json_t *parts[1] = {v};
    size_t count = 1;
    if (json_is_array(v))
        count = json_array_size(v);
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_is_array(v) ? json_array_get(v, i) : parts[0];
        const char *s = json_string_value(item);
        size_t n = json_string_length(item);
        size_t start = 0;
        for (size_t k = 0; k <= n; k++) {
            if (k == n || s[k] == ',') {
                json_array_append_new(out, json_stringn(s + start, k - start));
                start = k + 1;
            }
        }
    }
    return out;
}

static json_t *
check_array(const struct field_spec *sp, const json_t *v, bool from_query,
            struct app_err *err)
{
    json_t *list =
        from_query ? flatten_query_list(v) : json_incref((json_t *)v);
    json_t *out = NULL;
    if (!json_is_array(list)) {
        struct strbuf rule = STRBUF_INIT;
        sb_printf(&rule, "%s must be an array", sp->name);
        add_got(err, sb_str(&rule), v);
        sb_free(&rule);
        goto done;
    }
    size_t n = json_array_size(list);
    if ((long)n < sp->min || (long)n > sp->max) {
        if (sp->min == 1 && n == 0)
            err_add(err, 422, "%s must not be empty", sp->name);
        else
            err_add(err, 422, "%s must have %ld to %ld items (got %zu)",
                    sp->name, sp->min, sp->max, n);
        goto done;
    }
    out = json_array();
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        struct strbuf ename = STRBUF_INIT;
        sb_printf(&ename, "%s[%zu]", sp->name, i);
        json_t *item;
        if (sp->type == FT_ENUM_ARRAY)
            item = check_string(sb_str(&ename), FT_ENUM, 0, 0, sp->choices,
                                json_array_get(list, i), err);
        else
            item = check_string(sb_str(&ename), sp->elem, sp->elem_min,
                                sp->elem_max, sp->choices,
                                json_array_get(list, i), err);
        sb_free(&ename);
        if (item == NULL)
            bad = true;
        else
            json_array_append_new(out, item);
    }
    if (bad) {
        json_decref(out);
        out = NULL;
    }
done:
    json_decref(list);
    return out;
}

/* {"tag_key": "tag value", ...}: keys follow the tag_key rule, values are
 * strings of 0..1024 characters, at most sp->max entries. */
static json_t *
check_tags(const struct field_spec *sp, const json_t *v, struct app_err *err)
{
    if (!json_is_object(v)) {
        struct strbuf rule = STRBUF_INIT;
        sb_printf(&rule, "%s must be an object of tag_key to tag_value",
                  sp->name);
        add_got(err, sb_str(&rule), v);
        sb_free(&rule);
        return NULL;
    }
    if ((long)json_object_size(v) > sp->max) {
        err_add(err, 422, "%s must have at most %ld tags (got %zu)", sp->name,
                sp->max, json_object_size(v));
        return NULL;
    }
    bool bad = false;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)v, key, value)
    {
        if (!is_tag_key(key, strlen(key))) {
            struct strbuf rule = STRBUF_INIT;
            json_t *k = json_string(key);
            sb_printf(&rule,
                      "%s keys must be 1 to 64 characters of A-Z, a-z, "
                      "0-9, '_', '.', '-'",
                      sp->name);
            add_got(err, sb_str(&rule), k ? k : json_null());
            json_decref(k);
            sb_free(&rule);
            bad = true;
            continue;
        }
        struct strbuf ename = STRBUF_INIT;
        sb_printf(&ename, "%s.%s", sp->name, key);
        json_t *norm =
            check_string(sb_str(&ename), FT_STRING, 0, 1024, NULL, value, err);
        sb_free(&ename);
        if (norm == NULL)
            bad = true;
        json_decref(norm);
    }
    return bad ? NULL : json_incref((json_t *)v);
}

static bool
is_array_type(enum field_type t)
{
    return t == FT_ENUM_ARRAY || t == FT_STRING_ARRAY;
}

int
validate_input(const json_t *in, const struct field_spec *specs,
               bool from_query, json_t **out, struct app_err *err)
{
    static const struct field_spec none[] = {{.name = NULL}};
    const char *key;
    const json_t *value;
    int before = err->status;
    json_t *result = json_object();

    *out = NULL;
    if (specs == NULL)
        specs = none;
    json_object_foreach((json_t *)in, key, value)
    {
        if (find_spec(specs, key) == NULL) {
            /* The name is quoted like a value: JSON-escaped, cut at 64. */
            struct strbuf q = STRBUF_INIT;
            json_t *name = json_string(key);
            describe(&q, name ? name : json_null());
            json_decref(name);
            err_add(err, 422, "Unknown field %s", sb_str(&q));
            sb_free(&q);
        }
    }
    for (const struct field_spec *sp = specs; sp->name != NULL; sp++) {
        const json_t *v = json_object_get(in, sp->name);
        if (v == NULL || json_is_null(v)) {
            if (sp->required)
                err_add(err, 422, "Missing required field \"%s\"", sp->name);
            continue;
        }
        if (from_query && json_is_array(v) && !is_array_type(sp->type)) {
            err_add(err, 422, "%s must be given once (got %zu values)",
                    sp->name, json_array_size(v));
            continue;
        }
        json_t *norm;
        if (sp->type == FT_INT)
            norm = check_int(sp, v, from_query, err);
        else if (is_array_type(sp->type))
            norm = check_array(sp, v, from_query, err);
        else if (sp->type == FT_TAGS)
            norm = check_tags(sp, v, err);
        else
            norm = check_string(sp->name, sp->type, sp->min, sp->max,
                                sp->choices, v, err);
        if (norm != NULL)
            json_object_set_new(result, sp->name, norm);
    }
    if (err->status != before || err->msg != NULL) {
        json_decref(result);
        return -1;
    }
    *out = result;
    return 0;
}
