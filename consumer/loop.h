/*
 * consumer/loop.h — the consumer program's loop: one thread, one broker
 * connection (amqp_consume.h), re-made with a backoff (1, 2, 4, 5 s)
 * whenever it breaks; each turn waits for the next delivery, at most until
 * the ordering buffer's next gap timeout or a quarter second (to see a stop
 * request), hands a delivery to delivery.h and drains the customers whose
 * gap has waited long enough.  Deliveries held for ordering belong to the
 * connection: when it breaks they are forgotten, and the broker requeues
 * them.
 */
#ifndef FC_LOOP_H
#define FC_LOOP_H

#include "app.h"

/* Runs until a stop is requested (SIGINT/SIGTERM: the message in hand is
 * finished first) or a fatal error. */
void loop_run(struct app *a);

/* Stops deliveries (basic.cancel), hands back what is held, closes the
 * connection and logs what was done. */
void loop_shut_down(struct app *a);

#endif
