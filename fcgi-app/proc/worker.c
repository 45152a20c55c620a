/*
 * fcgi-app/proc/worker.c — see worker.h.
 */
#include "worker.h"
#include "common/log.h"
#include "../db/db.h"
#include "../http/pipeline.h"
#include "../metrics/metrics.h"
#include "../outbox/publisher.h"
#include "stop_signals.h"

#include <errno.h>
#include <fcgiapp.h>
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

/* Waits until a connection is pending or a stop is requested. */
static bool
wait_readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    sigset_t during;
    sigemptyset(&during); /* nothing blocked while waiting */
    struct timespec tick = {.tv_sec = 1, .tv_nsec = 0};
    while (!stop_requested) {
        int rc = ppoll(&pfd, 1, &tick, &during);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return false;
    }
    return false;
}

_Noreturn void
worker_main(const struct config *cfg, int listen_fd, size_t slot,
            struct ready *ready)
{
    sigset_t stop_set;
    struct db db;
    FCGX_Request fcgx;
    long served = 0;

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(0); /* the master died before we got here */
    stop_signals_install(&stop_set, on_stop);
    metrics_set_slot(slot);

    if (FCGX_Init() != 0 ||
        FCGX_InitRequest(&fcgx, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        log_error("worker: libfcgi initialisation failed");
        _exit(1);
    }
    if (db_init(&db, cfg) < 0) {
        log_error("worker: out of memory");
        _exit(1);
    }
    struct app_err err = APP_ERR_INIT;
    if (ready->await_db) {
        /* a roll's replacement: no request before the database answers;
         * a stop while waiting skips the accept loop */
        if (ready_await_db(&db, "worker", &stop_requested) < 0)
            ready_abandon(ready);
    } else if (db_ensure(&db, &err) < 0) {
        log_warn("worker: database not reachable yet (%s); will retry per "
                 "request",
                 err.detail ? err.detail : "");
    }
    err_clear(&err);

    struct publisher pub;
    if (publisher_init(&pub, cfg) < 0) {
        log_error("worker: out of memory");
        _exit(1);
    }
    if (db.conn != NULL)
        publisher_warm_up(&pub, &db);

    struct pipeline pipe = {.cfg = cfg, .db = &db, .pub = &pub};
    if (!stop_requested) {
        ready_notify(ready);
        log_info("worker started");
    }
    while (!stop_requested) {
        if (!wait_readable(listen_fd))
            continue;
        if (stop_signals_pending(&stop_set))
            break;
        /* The listening socket is non-blocking (the master set it): when
         * another worker won the connection, this returns at once. */
        if (FCGX_Accept_r(&fcgx) < 0)
            continue;
        pipeline_serve(&pipe, &fcgx);
        FCGX_Finish_r(&fcgx);
        if (cfg->max_requests > 0 && ++served >= cfg->max_requests) {
            log_info("worker served %ld requests; recycling", served);
            break;
        }
    }
    publisher_free(&pub);
    db_close(&db);
    FCGX_Free(&fcgx, 0);
    log_info("worker stopped");
    _exit(0);
}
