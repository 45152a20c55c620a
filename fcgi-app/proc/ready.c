/*
 * fcgi-app/proc/ready.c — see ready.h.
 */
#include "ready.h"
#include "common/log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define AWAIT_DB_RETRY_MS 500

void
ready_notify(struct ready *r)
{
    if (r->fd < 0)
        return;
    pid_t pid = getpid();
    ssize_t w = write(r->fd, &pid, sizeof pid);
    (void)w; /* a short or failed write: the master never hears; see .h */
    ready_abandon(r);
}

void
ready_abandon(struct ready *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

int
ready_await_db(struct db *db, const char *who,
               const volatile sig_atomic_t *stop)
{
    bool said = false;
    while (!*stop) {
        struct app_err err = APP_ERR_INIT;
        int rc = db_ensure(db, &err);
        if (rc == 0) {
            if (said)
                log_info("%s: database reachable; ready", who);
            err_clear(&err);
            return 0;
        }
        if (!said) {
            /* libpq's message spans lines: keep the log one line each */
            char why[256];
            snprintf(why, sizeof why, "%s", err.detail ? err.detail : "");
            for (char *c = why; *c != '\0'; c++)
                if (*c == '\n' || *c == '\t')
                    *c = ' ';
            log_warn("%s: a roll's replacement waits for the database "
                     "before it takes work; the process it replaces keeps "
                     "running (%s)",
                     who, why);
        }
        said = true;
        err_clear(&err);

        sigset_t during;
        sigemptyset(&during); /* a stop signal may interrupt the wait */
        struct timespec ts = {.tv_sec = 0,
                              .tv_nsec = AWAIT_DB_RETRY_MS * 1000000L};
        if (ppoll(NULL, 0, &ts, &during) < 0 && errno != EINTR)
            break;
    }
    return -1;
}
