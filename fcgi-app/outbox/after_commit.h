/*
 * fcgi-app/outbox/after_commit.h — the inline publish (API.md section 5):
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

/* `event_ids`: a JSON array of the ids the request committed. */
void outbox_publish_committed(struct publisher *p, struct db *db,
                              json_t *event_ids);

#endif
