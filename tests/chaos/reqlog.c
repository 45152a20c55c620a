/*
 * tests/chaos/reqlog.c — see reqlog.h.
 */
#include "reqlog.h"

#include "util.h"

#include <string.h>

#define REQLOG_FIELDS 9

const char *
reqlog_kind_name(enum reqlog_kind k)
{
    return k == REQLOG_CREATE ? "create" : "status";
}

void
reqlog_format(const struct reqlog_attempt *a, struct strbuf *out)
{
    sb_printf(
        out, "%lld %lld %d %s %s %d %d %lld %s\n", (long long)a->start_ms,
        (long long)a->end_ms, a->node, a->method, reqlog_kind_name(a->kind),
        a->status, a->attempt, (long long)a->logical_id,
        a->customer_id != NULL && a->customer_id[0] != '\0' ? a->customer_id
                                                            : "-");
}

static bool
parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return chaos_parse_i64(s, out) && *out >= min && *out <= max;
}

int
reqlog_parse(char *line, struct reqlog_attempt *out)
{
    char *tok[REQLOG_FIELDS];
    int64_t v[REQLOG_FIELDS];
    size_t n = chaos_split(line, tok, REQLOG_FIELDS);

    if (n == 0 || tok[0][0] == '#')
        return 0;
    if (n != REQLOG_FIELDS)
        return -1;
    if (!parse_int(tok[0], 0, INT64_MAX, &v[0]) ||
        !parse_int(tok[1], 0, INT64_MAX, &v[1]) ||
        !parse_int(tok[2], 0, 1000000, &v[2]) ||
        !parse_int(tok[5], 0, 999, &v[5]) ||
        !parse_int(tok[6], 1, 1000000000, &v[6]) ||
        !parse_int(tok[7], 0, INT64_MAX, &v[7]))
        return -1;
    if (strcmp(tok[4], "create") == 0)
        out->kind = REQLOG_CREATE;
    else if (strcmp(tok[4], "status") == 0)
        out->kind = REQLOG_STATUS;
    else
        return -1;
    out->start_ms = v[0];
    out->end_ms = v[1] < v[0] ? v[0] : v[1];
    out->node = (int)v[2];
    out->method = tok[3];
    out->status = (int)v[5];
    out->attempt = (int)v[6];
    out->logical_id = v[7];
    out->customer_id = tok[8];
    return 1;
}

bool
reqlog_header_is_retry(const char *line)
{
    return line[0] == '#' && strstr(line, "fintegrate-chaos load") != NULL &&
           strstr(line, " retry=1") != NULL;
}
