/*
 * fcgi-app/outbox/after_commit.c — see after_commit.h.
 */
#include "after_commit.h"
#include "common/log.h"
#include "redrive.h"

#include <stdlib.h>

/* Reads the events back after the commit, with whether an earlier event
 * of their customer is still pending: the order rule judged again after
 * the commit, so an earlier event published meanwhile holds nothing. */
static int
load_committed(struct db *db, const json_t *events, struct outbox_rows *rows,
               struct app_err *err)
{
    json_t *ids = json_array();
    char *text = NULL;
    size_t i;
    json_t *ev;
    int rc = -1;

    json_array_foreach(events, i, ev)
    {
        if (json_array_append(ids, json_object_get(ev, "event_id")) < 0)
            break;
    }
    text = ids && json_array_size(ids) == json_array_size(events)
               ? json_dumps(ids, JSON_COMPACT)
               : NULL;
    if (text == NULL)
        err_set(err, 500, "Out of memory publishing committed events");
    else
        rc = outbox_db_load(db, text, rows, err);
    free(text);
    json_decref(ids);
    return rc;
}

void
outbox_publish_committed(struct publisher *p, struct db *db, json_t *events)
{
    struct app_err err = APP_ERR_INIT;
    struct outbox_rows rows = {0};
    size_t n = json_array_size(events);
    bool reload = false, stop;
    int rc = -1;

    if (n == 0)
        return;
    /* As the INSERTs returned them: nothing to read back, unless one was
     * behind a pending event of its customer when it was written. */
    rows.ev = calloc(n, sizeof *rows.ev);
    if (rows.ev == NULL) {
        log_error("outbox: out of memory publishing committed events");
        return;
    }
    for (size_t i = 0; i < n && !reload; i++)
        reload =
            !outbox_event_from_json(json_array_get(events, i), &rows.ev[i]) ||
            rows.ev[i].prev_pending > 0;
    rows.n = n;
    if (reload) {
        outbox_rows_free(&rows);
        if (load_committed(db, events, &rows, &err) < 0)
            goto out;
    }
    rc = redrive_rows(p, db, ROWS_INLINE, &rows, -1, NULL, NULL, &stop, &err);
out:
    if (rc < 0)
        log_error("outbox: publishing committed events: %s",
                  err.detail ? err.detail : err.msg);
    outbox_rows_free(&rows);
    err_clear(&err);
}
