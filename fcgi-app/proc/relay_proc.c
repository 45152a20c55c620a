/*
 * fcgi-app/proc/relay_proc.c — see relay_proc.h.
 */
#include "relay_proc.h"
#include "../core/clock.h"
#include "../core/log.h"
#include "../db/db.h"
#include "../metrics/metrics.h"
#include "../outbox/publisher.h"
#include "../outbox/relay.h"

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

/* A stop interrupts only the wait between passes: during a pass the stop
 * signals are blocked, so a batch is never cut between publishing and
 * recording (that would republish it). */
static void
install_signals(sigset_t *stop_set)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sigemptyset(stop_set);
    sigaddset(stop_set, SIGTERM);
    sigaddset(stop_set, SIGINT);
    sigaddset(stop_set, SIGQUIT);
    sigprocmask(SIG_BLOCK, stop_set, NULL);
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
relay_main(const struct config *cfg, size_t slot)
{
    sigset_t stop_set;
    struct db db;
    struct publisher pub;

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(0);
    /* /proc/PID/comm: how ps, the tests and the bench tell it from the
     * workers */
    prctl(PR_SET_NAME, "fi-relay");
    install_signals(&stop_set);
    metrics_set_slot(slot);
    if (db_init(&db, cfg->db_url) < 0 || publisher_init(&pub, cfg) < 0) {
        log_error("relay: out of memory");
        _exit(1);
    }
    log_info("relay started (a pass every %ld ms)", cfg->relay_interval_ms);
    long long next = mono_ms();
    while (!stop_requested) {
        wait_until(next);
        if (stop_requested)
            break;
        next = mono_ms() + cfg->relay_interval_ms;
        long long published;
        relay_pass(&pub, &db, cfg, &published);
    }
    publisher_free(&pub);
    db_close(&db);
    log_info("relay stopped");
    _exit(0);
}
