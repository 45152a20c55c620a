/*
 * fcgi-app/proc/master.h — the prefork master (php-fpm style).
 *
 * Forks cfg->workers workers on the listening socket (and the relay, when
 * it is on) and then only supervises: a worker that dies is replaced (with
 * a growing delay when workers die abnormally in a storm);
 * SIGTERM/SIGINT/SIGQUIT stop it gracefully (workers finish their request;
 * after 10 s the stragglers are killed).  Signal handlers only write to a
 * self-pipe; all work happens in the master's loop.
 *
 * SIGHUP rolls the pool, one process at a time: a replacement is forked
 * first, and only once it has said it is ready (its pid on the readiness
 * pipe, proc/ready.h: database connected, about to accept) is one old
 * process asked to stop (SIGTERM: it finishes its request).  A fork that
 * fails, or a replacement that dies or is not ready within 30 s, stops
 * nothing: it is logged and retried after a growing delay (1 s to 30 s),
 * or at once on the next SIGHUP.  A SIGHUP during a roll extends it to
 * everything started before that signal.  The decisions are
 * proc/roll.h's pure planner.
 */
#ifndef FI_MASTER_H
#define FI_MASTER_H

#include "../core/config.h"

/* Runs until stopped.  Returns the process exit status. */
int master_run(const struct config *cfg, int listen_fd);

#endif
