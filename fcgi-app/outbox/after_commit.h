/*
 * fcgi-app/outbox/after_commit.h — the inline publish (docs/API.md §7.2):
 * each event a request committed goes to the broker once, right after the
 * commit and before the answer.  A failure leaves it pending in the outbox
 * with the reason (the relay takes it from there); an event behind a
 * still-pending earlier event of its customer is held, not sent (section
 * 7).  The answer is the same either way.
 */
#ifndef FI_AFTER_COMMIT_H
#define FI_AFTER_COMMIT_H

#include "../db/db.h"
#include "publisher.h"

#include <jansson.h>

/*
 * `events` (borrowed): the JSON array of the events the request wrote, each
 * as outbox_db_append returned it.  Call it only once the transaction that
 * wrote them has committed: they are published from memory, without being
 * read back (an event that was behind a pending event of its customer when
 * it was written is read back, and the order rule judged again).
 */
void outbox_publish_committed(struct publisher *p, struct db *db,
                              json_t *events);

#endif
