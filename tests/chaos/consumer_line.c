/*
 * tests/chaos/consumer_line.c — see consumer_line.h.
 *
 * The three fields come right after the event type in the program's
 * output; values printed after them (name=..., tags=...) are JSON text that
 * may hold spaces and even "event=", so the scan stops at the first token
 * once all three were found, and never looks at a token holding a quote.
 */
#include "consumer_line.h"

#include "util.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#define MAX_TOKENS 8 /* time, verb, type, customer=, seq=, event=, 2 spare */

static bool
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

enum consumer_line_kind
consumer_line_parse(char *line, struct consumer_line *out)
{
    char *tok[MAX_TOKENS];
    size_t n = chaos_split(line, tok, MAX_TOKENS);
    char *event = NULL, *customer = NULL;
    const char *seq = NULL;

    /* the time stamp starts with a digit: "raw" and indented lines do not */
    if (n < 2 || !isdigit((unsigned char)tok[0][0]) ||
        strcmp(tok[1], "processed") != 0)
        return CONSUMER_LINE_OTHER;
    if (n > MAX_TOKENS)
        n = MAX_TOKENS;
    if (n < 3 || strchr(tok[2], '=') != NULL)
        return CONSUMER_LINE_MALFORMED;

    for (size_t i = 3; i < n; i++) {
        if (strchr(tok[i], '"') != NULL)
            break;
        if (event == NULL && starts_with(tok[i], "event="))
            event = tok[i] + strlen("event=");
        else if (customer == NULL && starts_with(tok[i], "customer="))
            customer = tok[i] + strlen("customer=");
        else if (seq == NULL && starts_with(tok[i], "seq="))
            seq = tok[i] + strlen("seq=");
        if (event != NULL && customer != NULL && seq != NULL)
            break;
    }
    if (event == NULL || customer == NULL || seq == NULL ||
        !chaos_is_uuid(event) ||
        (strcmp(customer, "-") != 0 && !chaos_is_uuid(customer)) ||
        !chaos_parse_i64(seq, &out->seq) || out->seq < 1)
        return CONSUMER_LINE_MALFORMED;
    /* ids compare as the database prints them */
    lower(event);
    lower(customer);
    out->event_type = tok[2];
    out->event_id = event;
    out->customer_id = customer;
    return CONSUMER_LINE_PROCESSED;
}
