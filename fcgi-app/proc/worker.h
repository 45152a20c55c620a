/*
 * fcgi-app/proc/worker.h — one worker process: accept loop on the shared
 * listening socket, one PostgreSQL connection (opened after fork), one
 * request at a time.
 *
 * SIGTERM/SIGINT/SIGQUIT ask it to stop: a request in flight finishes (the
 * signal is blocked while it runs), then the worker exits 0.  It also exits
 * when its master dies (PR_SET_PDEATHSIG) and after max_requests requests
 * (0 = never), so the master replaces it.
 *
 * It tells the master it is ready (proc/ready.h) just before its accept
 * loop, after its first database connection attempt; a roll's replacement
 * (ready->await_db) first waits until that connection is open and takes
 * no request before.
 */
#ifndef FI_WORKER_H
#define FI_WORKER_H

#include "../core/config.h"
#include "ready.h"

#include <stddef.h>

/* Never returns; exits the process.  `slot` is the worker's index in the
 * master's table (its metrics slot); `ready` is stolen (its fd is closed
 * before the accept loop). */
_Noreturn void worker_main(const struct config *cfg, int listen_fd, size_t slot,
                           struct ready *ready);

#endif
