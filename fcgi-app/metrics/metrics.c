/*
 * fcgi-app/metrics/metrics.c — see metrics.h.
 */
#include "metrics.h"
#include "../core/http_status.h"
#include "../http/router.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_ROUTES 64
#define ROUTE_SLOTS (MAX_ROUTES + 1) /* the last: "unmatched" */

static const char *const methods[] = {"GET",    "POST", "PUT",     "PATCH",
                                      "DELETE", "HEAD", "OPTIONS", "OTHER"};
#define N_METHODS (sizeof methods / sizeof methods[0])

static const int statuses[] = {
#define X(code, name, reason) code,
    HTTP_STATUS_LIST(X)
#undef X
};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])

static const double duration_le[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_DURATION (sizeof duration_le / sizeof duration_le[0])

static const double lag_le[] = {0.01, 0.05, 0.1, 0.5, 1,   2.5,
                                5,    10,   30,  60,  300, 3600};
#define N_LAG (sizeof lag_le / sizeof lag_le[0])

static const char *const fail_reasons[] = {"timeout", "nack", "returned",
                                           "connection", "circuit_open"};
#define N_REASONS (sizeof fail_reasons / sizeof fail_reasons[0])

static const char *const confirm_statuses[] = {"received", "processed",
                                               "failed"};
#define N_CONFIRMS (sizeof confirm_statuses / sizeof confirm_statuses[0])

static const char *const relay_outcomes[] = {"published", "idle", "broker_down",
                                             "error"};
#define N_RELAY_OUTCOMES (sizeof relay_outcomes / sizeof relay_outcomes[0])

struct histogram_dur {
    uint64_t
        buckets[N_DURATION + 1]; /* per bucket, not cumulative; +Inf last */
    uint64_t sum_us;
    uint64_t count;
};

struct histogram_lag {
    uint64_t buckets[N_LAG + 1];
    uint64_t sum_ms;
    uint64_t count;
};

struct shm {
    uint64_t requests[ROUTE_SLOTS][N_METHODS][N_STATUSES];
    struct histogram_dur duration[ROUTE_SLOTS];
    uint64_t published;
    uint64_t publish_failures[N_REASONS];
    uint64_t confirms[N_CONFIRMS];
    struct histogram_lag lag;
    uint64_t restarts;
    uint64_t relay_passes[N_RELAY_OUTCOMES];
    uint64_t relay_published;
    uint32_t breaker[METRICS_MAX_SLOTS];
};

static struct shm *shm;
static size_t my_slot = METRICS_MAX_SLOTS; /* none until set */

static void
add(uint64_t *p, uint64_t n)
{
    __atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int
metrics_init(void)
{
    _Static_assert(METRICS_MAX_SLOTS > 0, "slots");
    if (routes_count > MAX_ROUTES)
        return -1;
    void *p = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    shm = p; /* zero-filled by the kernel */
    return 0;
}

void
metrics_set_slot(size_t slot)
{
    my_slot = slot < METRICS_MAX_SLOTS ? slot : METRICS_MAX_SLOTS;
    metrics_breaker_state(0);
}

void
metrics_clear_slot(size_t slot)
{
    if (shm != NULL && slot < METRICS_MAX_SLOTS)
        __atomic_store_n(&shm->breaker[slot], 0, __ATOMIC_RELAXED);
}

/* Histograms and the route label go by path: the first route of a path
 * stands for all its methods. */
static size_t
path_slot(int route_index)
{
    if (route_index < 0 || (size_t)route_index >= routes_count)
        return MAX_ROUTES;
    for (size_t i = 0; i < (size_t)route_index; i++)
        if (strcmp(routes[i].path, routes[route_index].path) == 0)
            return i;
    return (size_t)route_index;
}

static size_t
method_index(const char *m)
{
    for (size_t i = 0; i + 1 < N_METHODS; i++)
        if (strcmp(methods[i], m) == 0)
            return i;
    return N_METHODS - 1;
}

static size_t
status_index(int status)
{
    for (size_t i = 0; i < N_STATUSES; i++)
        if (statuses[i] == status)
            return i;
    return N_STATUSES - 1;
}

void
metrics_request(int route_index, const char *method, int status, double seconds)
{
    if (shm == NULL)
        return;
    size_t r = path_slot(route_index);
    add(&shm->requests[r][method_index(method)][status_index(status)], 1);
    size_t b = 0;
    while (b < N_DURATION && seconds > duration_le[b])
        b++;
    add(&shm->duration[r].buckets[b], 1);
    add(&shm->duration[r].sum_us, (uint64_t)(seconds * 1e6));
    add(&shm->duration[r].count, 1);
}

void
metrics_published(void)
{
    if (shm != NULL)
        add(&shm->published, 1);
}

void
metrics_publish_failed(const char *reason)
{
    if (shm == NULL)
        return;
    size_t i = 0;
    while (i < N_REASONS && strcmp(fail_reasons[i], reason) != 0)
        i++;
    add(&shm->publish_failures[i < N_REASONS ? i : 3], 1);
}

void
metrics_breaker_state(int state)
{
    if (shm != NULL && my_slot < METRICS_MAX_SLOTS)
        __atomic_store_n(&shm->breaker[my_slot], (uint32_t)state,
                         __ATOMIC_RELAXED);
}

void
metrics_confirm(const char *status)
{
    if (shm == NULL)
        return;
    for (size_t i = 0; i < N_CONFIRMS; i++)
        if (strcmp(confirm_statuses[i], status) == 0)
            add(&shm->confirms[i], 1);
}

void
metrics_delivery_lag(double seconds)
{
    if (shm == NULL)
        return;
    if (seconds < 0)
        seconds = 0;
    size_t b = 0;
    while (b < N_LAG && seconds > lag_le[b])
        b++;
    add(&shm->lag.buckets[b], 1);
    add(&shm->lag.sum_ms, (uint64_t)(seconds * 1e3));
    add(&shm->lag.count, 1);
}

void
metrics_worker_restart(void)
{
    if (shm != NULL)
        add(&shm->restarts, 1);
}

void
metrics_relay_pass(const char *outcome, long long published)
{
    if (shm == NULL)
        return;
    size_t i = 0;
    while (i + 1 < N_RELAY_OUTCOMES && strcmp(relay_outcomes[i], outcome) != 0)
        i++;
    add(&shm->relay_passes[i], 1);
    if (published > 0)
        add(&shm->relay_published, (uint64_t)published);
}

/* ------------------------------------------------------------- rendering */

static void
family(struct strbuf *out, const char *name, const char *type, const char *help)
{
    sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *
route_label(size_t slot)
{
    return slot < routes_count ? routes[slot].path : "unmatched";
}

static void
render_requests(struct strbuf *out)
{
    family(out, "fintegrate_http_requests_total", "counter",
           "HTTP requests answered by the workers, by route, method and "
           "status.");
    for (size_t r = 0; r < ROUTE_SLOTS; r++)
        for (size_t m = 0; m < N_METHODS; m++)
            for (size_t s = 0; s < N_STATUSES; s++) {
                uint64_t v = get(&shm->requests[r][m][s]);
                if (v != 0)
                    sb_printf(out,
                              "fintegrate_http_requests_total{route=\"%s\","
                              "method=\"%s\",status=\"%d\"} %llu\n",
                              route_label(r), methods[m], statuses[s],
                              (unsigned long long)v);
            }
}

static bool
is_path_slot(size_t r)
{
    return r == MAX_ROUTES || (r < routes_count && path_slot((int)r) == r);
}

static void
render_durations(struct strbuf *out)
{
    family(out, "fintegrate_http_request_duration_seconds", "histogram",
           "Time from reading a request to writing its response, by route.");
    for (size_t r = 0; r < ROUTE_SLOTS; r++) {
        if (!is_path_slot(r))
            continue;
        const struct histogram_dur *h = &shm->duration[r];
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_DURATION; b++) {
            cum += get(&h->buckets[b]);
            if (b < N_DURATION)
                sb_printf(out,
                          "fintegrate_http_request_duration_seconds_bucket{"
                          "route=\"%s\",le=\"%g\"} %llu\n",
                          route_label(r), duration_le[b],
                          (unsigned long long)cum);
            else
                sb_printf(out,
                          "fintegrate_http_request_duration_seconds_bucket{"
                          "route=\"%s\",le=\"+Inf\"} %llu\n",
                          route_label(r), (unsigned long long)cum);
        }
        sb_printf(out,
                  "fintegrate_http_request_duration_seconds_sum{route=\"%s\"} "
                  "%.6f\n"
                  "fintegrate_http_request_duration_seconds_count{route=\"%s\"}"
                  " %llu\n",
                  route_label(r), (double)get(&h->sum_us) / 1e6, route_label(r),
                  (unsigned long long)get(&h->count));
    }
}

static void
render_lag(struct strbuf *out)
{
    family(out, "fintegrate_delivery_lag_seconds", "histogram",
           "delivered_at - created_at of events at their first delivery "
           "confirmation (the consumer lag).");
    uint64_t cum = 0;
    for (size_t b = 0; b <= N_LAG; b++) {
        cum += get(&shm->lag.buckets[b]);
        if (b < N_LAG)
            sb_printf(out,
                      "fintegrate_delivery_lag_seconds_bucket{le=\"%g\"} "
                      "%llu\n",
                      lag_le[b], (unsigned long long)cum);
        else
            sb_printf(out,
                      "fintegrate_delivery_lag_seconds_bucket{le=\"+Inf\"} "
                      "%llu\n",
                      (unsigned long long)cum);
    }
    sb_printf(out,
              "fintegrate_delivery_lag_seconds_sum %.3f\n"
              "fintegrate_delivery_lag_seconds_count %llu\n",
              (double)get(&shm->lag.sum_ms) / 1e3,
              (unsigned long long)get(&shm->lag.count));
}

void
metrics_render(struct strbuf *out, const struct metrics_gauges *g)
{
    if (shm == NULL)
        return;
    render_requests(out);
    render_durations(out);

    family(out, "fintegrate_events_published_total", "counter",
           "Events the broker confirmed (basic.ack), inline or re-driven.");
    sb_printf(out, "fintegrate_events_published_total %llu\n",
              (unsigned long long)get(&shm->published));

    family(out, "fintegrate_publish_failures_total", "counter",
           "Publish attempts that failed, by reason.");
    for (size_t i = 0; i < N_REASONS; i++)
        sb_printf(out,
                  "fintegrate_publish_failures_total{reason=\"%s\"} %llu\n",
                  fail_reasons[i],
                  (unsigned long long)get(&shm->publish_failures[i]));

    family(out, "fintegrate_delivery_confirms_total", "counter",
           "Delivery confirmations received, by status.");
    for (size_t i = 0; i < N_CONFIRMS; i++)
        sb_printf(
            out, "fintegrate_delivery_confirms_total{status=\"%s\"} %llu\n",
            confirm_statuses[i], (unsigned long long)get(&shm->confirms[i]));

    uint32_t worst = 0;
    for (size_t i = 0; i < METRICS_MAX_SLOTS; i++) {
        uint32_t s = __atomic_load_n(&shm->breaker[i], __ATOMIC_RELAXED);
        if (s > worst)
            worst = s;
    }
    family(out, "fintegrate_circuit_breaker_state", "gauge",
           "Worst circuit breaker state across workers: 0 closed, "
           "1 half-open, 2 open.");
    sb_printf(out, "fintegrate_circuit_breaker_state %u\n", worst);

    /* Read from the database at scrape time; without it, no sample (an
     * absent series, not a false zero). */
    bool known = g != NULL && g->known;
    family(out, "fintegrate_outbox_pending", "gauge",
           "Events not yet published (publish_status = 'pending').");
    if (known)
        sb_printf(out, "fintegrate_outbox_pending %lld\n", g->outbox_pending);
    family(out, "fintegrate_outbox_failed", "gauge",
           "Events given up after 10 publish attempts.");
    if (known)
        sb_printf(out, "fintegrate_outbox_failed %lld\n", g->outbox_failed);
    family(out, "fintegrate_events_undelivered", "gauge",
           "Published events no consumer has confirmed yet.");
    if (known)
        sb_printf(out, "fintegrate_events_undelivered %lld\n",
                  g->events_undelivered);

    render_lag(out);

    family(out, "fintegrate_worker_restarts_total", "counter",
           "Workers the master replaced after they exited.");
    sb_printf(out, "fintegrate_worker_restarts_total %llu\n",
              (unsigned long long)get(&shm->restarts));

    family(out, "fintegrate_relay_passes_total", "counter",
           "Relay passes, by outcome: published (it published events), idle "
           "(nothing due), broker_down (the probe failed; no event touched), "
           "error (the database failed).");
    for (size_t i = 0; i < N_RELAY_OUTCOMES; i++)
        sb_printf(out, "fintegrate_relay_passes_total{outcome=\"%s\"} %llu\n",
                  relay_outcomes[i],
                  (unsigned long long)get(&shm->relay_passes[i]));
    family(out, "fintegrate_relay_published_total", "counter",
           "Events the relay published (the broker confirmed them).");
    sb_printf(out, "fintegrate_relay_published_total %llu\n",
              (unsigned long long)get(&shm->relay_published));
}
