/*
 * fcgi-app/http/validate.h — declarative input validation.
 *
 * A route lists its fields as a table of field_spec rows.  validate_input()
 * checks an input object against it and produces a normalised copy (UUIDs
 * lower-cased, names trimmed, query-string integers converted, comma lists
 * split), or a 422 naming every problem, joined with "; ", unknown fields
 * first — e.g.
 *   Unknown field "stauts"; status must be one of ACTIVE, INACTIVE (got "x")
 *
 * Pure: no I/O, unit-tested in tests/unit/test_validate.c.
 */
#ifndef FI_VALIDATE_H
#define FI_VALIDATE_H

#include "../core/app_err.h"

#include <jansson.h>
#include <stdbool.h>

enum field_type {
    FT_STRING,  /* string of min..max code points */
    FT_NAME,    /* string trimmed of surrounding whitespace, then min..max */
    FT_UUID,    /* 8-4-4-4-12 hex, any case; normalised to lower case */
    FT_ENUM,    /* one of `choices` (case-sensitive) */
    FT_INT,     /* integer in min..max (query: decimal text) */
    FT_TAG_KEY, /* 1-64 of [A-Za-z0-9_.-] */
    FT_CONSUMER_NAME, /* ^[a-z0-9][a-z0-9_-]{0,62}$ (part of queue names) */
    FT_TIMESTAMP,     /* ISO 8601 with offset or Z (checked by the database) */
    FT_ENUM_ARRAY,    /* non-empty array of `choices`; query: repeated or a,b */
    FT_STRING_ARRAY,  /* array of min..max strings (elements: elem_max chars) */
    FT_TAGS /* object of at most `max` tag_key → 0..1024-char value */
};

struct field_spec {
    const char *name; /* NULL ends the table */
    enum field_type type;
    bool required;
    long min, max;              /* lengths, values or element counts */
    const char *const *choices; /* FT_ENUM, FT_ENUM_ARRAY: NULL-terminated */
    enum field_type elem;       /* FT_STRING_ARRAY element type */
    long elem_min, elem_max;    /* FT_STRING_ARRAY element bounds */
};

/*
 * Validates `in` (an object; borrowed) against `specs`.  `from_query` says
 * the values came from a query string (strings, or arrays of strings for a
 * repeated parameter).  On success returns 0 and *out is a new object
 * (owned; json_decref) holding only the given fields, normalised.  On
 * failure returns -1 with a 422 in `err`.
 */
int validate_input(const json_t *in, const struct field_spec *specs,
                   bool from_query, json_t **out, struct app_err *err)
    __attribute__((warn_unused_result));

#endif
