/*
 * fcgi-app/proc/relay_proc.c — see relay_proc.h.
 */
#include "relay_proc.h"
#include "common/clock.h"
#include "common/log.h"
#include "../db/db.h"
#include "../metrics/metrics.h"
#include "../outbox/publisher.h"
#include "../outbox/relay.h"
#include "stop_signals.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void
on_stop(int signo)
{
    (void)signo;
    stop_requested = 1;
}

static sigset_t stop_set;

/* Asked between batches: a stop waiting ends the pass after the batch in
 * hand, well within the master's grace. */
static bool
stop_pending(void)
{
    return stop_signals_pending(&stop_set);
}

/* Sleeps until `until` (monotonic ms) or a stop. */
static void
wait_until(long long until)
{
    sigset_t during;
    sigemptyset(&during);
    while (!stop_requested) {
        long long left = until - mono_ms();
        if (left <= 0)
            return;
        struct timespec ts = {.tv_sec = left / 1000,
                              .tv_nsec = (left % 1000) * 1000000};
        if (ppoll(NULL, 0, &ts, &during) < 0 && errno != EINTR)
            return;
    }
}

_Noreturn void
relay_main(const struct config *cfg, size_t slot, struct ready *ready)
{
    struct db db;
    struct publisher pub;

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(0);
    /* /proc/PID/comm: how ps, the tests and the bench tell it from the
     * workers */
    prctl(PR_SET_NAME, "fi-relay");
    stop_signals_install(&stop_set, on_stop);
    metrics_set_slot(slot);
    if (db_init(&db, cfg) < 0 || publisher_init(&pub, cfg) < 0) {
        log_error("relay: out of memory");
        _exit(1);
    }
    if (ready->await_db && ready_await_db(&db, "relay", &stop_requested) < 0)
        ready_abandon(ready);
    ready_notify(ready);
    if (!stop_requested)
        log_info("relay started (a pass every %ld ms)", cfg->relay_interval_ms);
    long long next = mono_ms();
    while (!stop_requested) {
        wait_until(next);
        if (stop_requested)
            break;
        next = mono_ms() + cfg->relay_interval_ms;
        long long published;
        relay_pass(&pub, &db, cfg, stop_pending, &published);
    }
    publisher_free(&pub);
    db_close(&db);
    log_info("relay stopped");
    _exit(0);
}
