/*
 * consumer/app.h — the consumer program's state while it runs, shared by
 * its loop (loop.h) and the handling of each delivery (delivery.h), and
 * the few helpers both need: the stop request, an interruptible nap and a
 * fatal stop.
 *
 * Ownership: main.c owns struct app and every member (it creates and frees
 * them); the other modules borrow it.
 */
#ifndef FC_APP_H
#define FC_APP_H

#include "amqp_consume.h"
#include "config.h"
#include "confirm.h"
#include "reorder.h"
#include "state.h"

#include <signal.h>
#include <stdbool.h>

#define APP_EXIT_FATAL 3 /* the exit status after a fatal error */

struct app {
    struct consumer_config cfg;
    struct state *state;
    struct reorder *reorder; /* holds deliveries (delivery.h) */
    struct confirm_client *confirm;
    struct amqpc mq;
    int exit_code;     /* non-zero: a fatal error, stop with it */
    long retry_streak; /* consecutive confirmations that could not get
                          through */
    long reconnect_ms; /* wait before the next connection attempt */
    unsigned long n_processed, n_duplicates, n_rejected, n_requeued;
};

/* Set by SIGINT and SIGTERM (main.c installs the handler). */
extern volatile sig_atomic_t app_stop_requested;

/* A stop was requested, or a fatal error recorded. */
bool app_stopping(const struct app *a);

/* Sleeps up to ms, waking early when app_stopping. */
void app_nap(const struct app *a, long ms);

/* Logs `what` and records APP_EXIT_FATAL: the loop stops, unfinished
 * messages stay in the queue. */
void app_fatal(struct app *a, const char *what);

#endif
