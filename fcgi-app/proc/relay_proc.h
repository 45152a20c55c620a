/*
 * fcgi-app/proc/relay_proc.h — the relay process: one per node, started and
 * replaced by the master like a worker (same binary), when
 * FINTEGRATE_RELAY_INTERVAL_MS is not 0.
 *
 * Why a process of its own rather than a worker's idle time: a pass over a
 * large backlog takes seconds, and a worker busy with it would leave its
 * share of requests waiting; passes must start on a steady clock whatever
 * the request load; and exactly one per node is then a fact of the process
 * table, not a lock the workers compete for.  It costs one more PostgreSQL
 * and one more AMQP connection per node.
 *
 * It tells the master it is ready (proc/ready.h) before its first pass; a
 * roll's replacement (ready->await_db) first opens its database
 * connection.  A SIGHUP roll starts the new relay before it stops the old
 * one, so for a moment two relays run on the node: the old one finishes
 * the batch in hand, and two passes at once are safe (rows are claimed
 * with FOR UPDATE SKIP LOCKED and per-customer order is kept, as with the
 * relays of several nodes).
 */
#ifndef FI_RELAY_PROC_H
#define FI_RELAY_PROC_H

#include "../core/config.h"
#include "ready.h"

#include <stddef.h>

/* Never returns; exits the process.  `slot`: its metrics slot; `ready` is
 * stolen (closed before the first pass). */
_Noreturn void relay_main(const struct config *cfg, size_t slot,
                          struct ready *ready);

#endif
