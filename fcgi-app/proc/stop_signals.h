/*
 * fcgi-app/proc/stop_signals.h — how a child of the master (a worker, the
 * relay) takes its stop signals (SIGTERM, SIGINT, SIGQUIT).
 *
 * They stay blocked all the time except while the child waits (ppoll with
 * an empty mask), so a stop can interrupt only a wait: never a request
 * being served, never a re-drive batch between publishing and recording.
 * Under steady work the wait may never sleep, so the child also asks
 * stop_signals_pending() between units of work.
 */
#ifndef FI_STOP_SIGNALS_H
#define FI_STOP_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

/* Installs `on_stop` for the stop signals (no SA_RESTART), ignores SIGPIPE
 * and SIGHUP, and blocks the stop signals; fills *stop_set with them. */
void stop_signals_install(sigset_t *stop_set, void (*on_stop)(int));

/* Whether a stop signal is waiting. */
bool stop_signals_pending(const sigset_t *stop_set);

#endif
