/*
 * fcgi-app/proc/worker.h — one worker process: accept loop on the shared
 * listening socket, one PostgreSQL connection (opened after fork), one
 * request at a time.
 *
 * SIGTERM/SIGINT/SIGQUIT ask it to stop: a request in flight finishes (the
 * signal is blocked while it runs), then the worker exits 0.  It also exits
 * when its master dies (PR_SET_PDEATHSIG) and after max_requests requests
 * (0 = never), so the master replaces it.
 */
#ifndef FI_WORKER_H
#define FI_WORKER_H

#include "../core/config.h"

#include <stddef.h>

/* Never returns; exits the process. */
/* `slot` is the worker's index in the master's table (its metrics slot). */
_Noreturn void worker_main(const struct config *cfg, int listen_fd,
                           size_t slot);

#endif
