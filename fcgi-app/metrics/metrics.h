/*
 * fcgi-app/metrics/metrics.h — counters for GET /metrics, shared by every
 * process of the pool.
 *
 * The master maps one anonymous shared segment before it forks (metrics_init),
 * so each worker adds into the same numbers with relaxed atomics and a
 * killed worker's counts stay.  Each worker owns one slot (its index in the
 * master's table) where it publishes its circuit breaker state; the
 * exported state is the worst over all slots.  Rendering produces the
 * Prometheus text exposition format (version 0.0.4).
 *
 * Label values come from fixed tables (routes, methods, statuses, reasons),
 * never from the request, so the series count is bounded.
 */
#ifndef FI_METRICS_H
#define FI_METRICS_H

#include "common/strbuf.h"

#include <stdbool.h>
#include <stddef.h>

#define METRICS_MAX_SLOTS 1024

/* Maps the segment; call once in the master before forking.  0 / -1. */
int metrics_init(void) __attribute__((warn_unused_result));

/* The calling worker's slot (0 .. METRICS_MAX_SLOTS-1); clears its state. */
void metrics_set_slot(size_t slot);
/* The master: a slot's worker is gone (its breaker state no longer counts). */
void metrics_clear_slot(size_t slot);

/* One answered request.  route_index: index into routes[], or -1 when no
 * route matched. */
void metrics_request(int route_index, const char *method, int status,
                     double seconds);

/* Publisher outcomes: reason is one of "timeout", "nack", "returned",
 * "connection", "circuit_open"; anything else counts as "connection". */
void metrics_published(void);
void metrics_publish_failed(const char *reason);
/* 0 closed, 1 half-open, 2 open — this worker's breaker. */
void metrics_breaker_state(int state);

/* A delivery confirmation ("received", "processed", "failed"), and the lag
 * of an event's first delivery. */
void metrics_confirm(const char *status);
void metrics_delivery_lag(double seconds);

/* One relay pass: outcome is "published", "idle", "broker_down" or
 * "error" (anything else counts as "error"); `published` events. */
void metrics_relay_pass(const char *outcome, long long published);

/* The master replaced a worker. */
void metrics_worker_restart(void);

/* Outbox gauges read from the database at scrape time. */
struct metrics_gauges {
    bool known; /* false when the database could not be asked */
    long long outbox_pending;
    long long outbox_failed;
    long long events_undelivered;
};

/* Appends the whole exposition to `out`. */
void metrics_render(struct strbuf *out, const struct metrics_gauges *g);

#endif
