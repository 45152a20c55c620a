/*
 * fcgi-app/proc/ready.h — the child's side of the master's readiness pipe.
 *
 * The master forks each child (a worker, the relay) holding the write end
 * of one pipe that all its children share.  A child writes its pid there
 * once it is ready to do its work (a worker: just before its accept loop),
 * then closes its end.  A pid is far smaller than PIPE_BUF, so the
 * children's messages never interleave.  During a SIGHUP roll the master
 * asks an old child to stop only once a replacement has written.
 *
 * A replacement forked by a roll waits for its database connection before
 * it says it is ready (await_db): it must not take requests only to answer
 * 503 while the old worker it would replace can still serve them.  A child
 * forked to fill the pool (the first start, after a crash) does not wait:
 * during a database outage it serves the 503 envelope like the others.
 *
 * Depends on db/ (the connection) and common/log; nothing in the master.
 */
#ifndef FI_READY_H
#define FI_READY_H

#include "../db/db.h"

#include <signal.h>
#include <stdbool.h>

struct ready {
    int fd;        /* write end of the master's pipe, owned; -1 once used */
    bool await_db; /* a roll's replacement: ready only once connected */
};

/* Writes the caller's pid to r->fd and closes it; once (later calls, and
 * a -1 fd, do nothing).  Async-signal-safe; never blocks (the pipe is
 * non-blocking: when it is full the master misses this child's readiness
 * and, for a replacement, gives up on it after its deadline). */
void ready_notify(struct ready *r);

/* Closes r->fd without saying anything (a child that gives up). */
void ready_abandon(struct ready *r);

/*
 * Connects `db` (db_ensure), retrying every half second until it works
 * (0) or *stop becomes non-zero (-1).  Between tries it waits with every
 * signal unblocked, so a stop signal whose handler sets *stop ends the
 * wait at once; `who` names the process in the log ("worker", "relay").
 */
int ready_await_db(struct db *db, const char *who,
                   const volatile sig_atomic_t *stop)
    __attribute__((warn_unused_result));

#endif
