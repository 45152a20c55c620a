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
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void
on_stop(int signo)
{
    (void)signo;
    stop_requested = 1;
}

/* The worker's wait for a connection.  Every worker watches the one
 * listening socket; with ppoll() (or a plain epoll) the kernel wakes all of
 * them for each connection and all but one find nothing to accept: with N
 * workers, N wake-ups and N - 1 failed accepts per request.  An epoll set
 * holding the socket with EPOLLEXCLUSIVE (Linux 4.5) wakes one waiter (at
 * times a few), as nginx's own workers do.  ppoll() stays as the fallback
 * when the epoll set cannot be made. */
struct accept_wait {
    int listen_fd;
    int epfd; /* -1: ppoll */
};

static void
accept_wait_init(struct accept_wait *w, int listen_fd)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};

    w->listen_fd = listen_fd;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0) {
        log_warn("worker: EPOLLEXCLUSIVE unavailable (%s); every worker "
                 "wakes for every connection",
                 strerror(errno));
        close(w->epfd);
        w->epfd = -1;
    }
}

static void
accept_wait_free(struct accept_wait *w)
{
    if (w->epfd >= 0)
        close(w->epfd);
    w->epfd = -1;
}

/* Waits until a connection is pending or a stop is requested; the stop
 * signals are blocked outside this wait and let through only inside it. */
static bool
wait_readable(const struct accept_wait *w)
{
    sigset_t during;
    sigemptyset(&during); /* nothing blocked while waiting */
    while (!stop_requested) {
        int rc;
        if (w->epfd >= 0) {
            struct epoll_event ev;
            rc = epoll_pwait(w->epfd, &ev, 1, 1000, &during);
        } else {
            struct pollfd pfd = {.fd = w->listen_fd, .events = POLLIN};
            struct timespec tick = {.tv_sec = 1, .tv_nsec = 0};
            rc = ppoll(&pfd, 1, &tick, &during);
        }
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
    struct accept_wait aw;
    accept_wait_init(&aw, listen_fd);
    if (!stop_requested) {
        ready_notify(ready);
        log_info("worker started");
    }
    while (!stop_requested) {
        if (!wait_readable(&aw))
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
    accept_wait_free(&aw);
    publisher_free(&pub);
    db_close(&db);
    FCGX_Free(&fcgx, 0);
    log_info("worker stopped");
    _exit(0);
}
