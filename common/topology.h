/*
 * common/topology.h — the names of Fintegrate's RabbitMQ topology
 * (docs/API.md §8.1): its two exchanges, a consumer's queue and DLQ, the
 * queue arguments and the rule a consumer name follows.  The service
 * declares the topology and publishes to it (fcgi-app/mq/); the consumer
 * program reads a queue of it (consumer/); the chaos tool checks names.
 *
 * Pure: no network, no logging.
 */
#ifndef FI_TOPOLOGY_H
#define FI_TOPOLOGY_H

#include "strbuf.h"

#include <stdbool.h>
#include <stddef.h>

/* topic: routing key "<consumer_name>.<event_type>" */
#define MQ_EXCHANGE_EVENTS "fintegrate.events"
/* direct: routing key "<consumer_name>" */
#define MQ_EXCHANGE_DLX "fintegrate.dlx"
/* customer_notification_<consumer_name>, and its DLQ with "_DLQ" after */
#define MQ_QUEUE_PREFIX "customer_notification_"
#define MQ_DLQ_SUFFIX "_DLQ"
/* x-delivery-limit and x-max-length of a consumer's queue */
#define MQ_DELIVERY_LIMIT 5
#define MQ_MAX_LENGTH 100000

/* What is_consumer_name accepts, for messages. */
#define CONSUMER_NAME_RULE "^[a-z0-9][a-z0-9_-]{0,62}$"

/* Whether the n bytes at s are a consumer name (CONSUMER_NAME_RULE): a
 * queue name and a routing key are built from it as they are. */
bool is_consumer_name(const char *s, size_t n);

/* Appends the name of the queue of `consumer_name` (of its DLQ when `dlq`)
 * to `out`; out->oom tells if that failed. */
void mq_queue_name(struct strbuf *out, const char *consumer_name, bool dlq);

#endif
