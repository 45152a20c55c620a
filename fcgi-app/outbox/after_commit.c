/*
 * fcgi-app/outbox/after_commit.c — see after_commit.h.
 */
#include "after_commit.h"
#include "../core/log.h"
#include "redrive.h"

#include <stdlib.h>

void
outbox_publish_committed(struct publisher *p, struct db *db, json_t *event_ids)
{
    struct app_err err = APP_ERR_INIT;
    struct outbox_rows rows = {0};
    bool stop;
    char *ids = NULL;

    if (json_array_size(event_ids) == 0)
        return;
    ids = json_dumps(event_ids, JSON_COMPACT);
    if (ids == NULL) {
        log_error("outbox: out of memory publishing committed events");
        return;
    }
    /* The events are read back with whether an earlier event of their
     * customer is still pending: the order rule is judged after the
     * commit, so an earlier event published meanwhile holds nothing. */
    if (outbox_db_load(db, ids, &rows, &err) < 0 ||
        redrive_rows(p, db, ROWS_INLINE, &rows, -1, NULL, NULL, &stop, &err) <
            0)
        log_error("outbox: publishing committed events: %s",
                  err.detail ? err.detail : err.msg);
    outbox_rows_free(&rows);
    err_clear(&err);
    free(ids);
}
