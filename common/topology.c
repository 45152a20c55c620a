/*
 * common/topology.c — see topology.h.
 */
#include "topology.h"

bool
is_consumer_name(const char *s, size_t n)
{
    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '_' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

void
mq_queue_name(struct strbuf *out, const char *consumer_name, bool dlq)
{
    sb_printf(out, MQ_QUEUE_PREFIX "%s%s", consumer_name,
              dlq ? MQ_DLQ_SUFFIX : "");
}
