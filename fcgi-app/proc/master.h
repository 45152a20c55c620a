/*
 * fcgi-app/proc/master.h — the prefork master (php-fpm style).
 *
 * Forks cfg->workers workers on the listening socket and then only
 * supervises: a worker that dies is replaced (with a growing delay when
 * workers die abnormally in a storm), SIGHUP rolls the pool (new workers
 * first, then the old ones are asked to finish), SIGTERM/SIGINT/SIGQUIT stop
 * it gracefully (workers finish their request; after 10 s the stragglers
 * are killed).  Signal handlers only write to a self-pipe; all work happens
 * in the master's loop.
 */
#ifndef FI_MASTER_H
#define FI_MASTER_H

#include "../core/config.h"

/* Runs until stopped.  Returns the process exit status. */
int master_run(const struct config *cfg, int listen_fd);

#endif
