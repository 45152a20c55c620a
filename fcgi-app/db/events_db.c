/*
 * fcgi-app/db/events_db.c — see events_db.h.
 */
#include "events_db.h"

#define EVENT_COLUMNS                                                          \
    "SELECT event_id, customer_id, consumer_id, event_type, source_service, "  \
    "       sequence, payload, request_id, "                                   \
    "       fintegrate_ts(created_at) AS created_at, publish_status, "         \
    "       fintegrate_ts(published_at) AS published_at, publish_try_count, "  \
    "       fintegrate_ts(publish_last_tried_at) AS publish_last_tried_at, "   \
    "       publish_failure_reason, deliver_status, "                          \
    "       fintegrate_ts(delivered_at) AS delivered_at, deliver_try_count, "  \
    "       fintegrate_ts(deliver_last_tried_at) AS deliver_last_tried_at, "   \
    "       deliver_failure_reason "                                           \
    "  FROM customer_events "

#define EVENT_FILTERS                                                          \
    " WHERE ($1::uuid IS NULL OR consumer_id = $1) "                           \
    "   AND ($2::uuid IS NULL OR customer_id = $2) "                           \
    "   AND ($3::json IS NULL OR event_type IN "                               \
    "        (SELECT json_array_elements_text($3::json))) "                    \
    "   AND ($4::text IS NULL OR publish_status = $4) "                        \
    "   AND ($5::text IS NULL OR deliver_status = $5) "

/* Two statements rather than a computed ORDER BY, so both use the index. */
DB_STMT(events_list_asc, 6,
        EVENT_COLUMNS EVENT_FILTERS
        " ORDER BY created_at, sequence, event_id LIMIT $6");
DB_STMT(events_list_desc, 6,
        EVENT_COLUMNS EVENT_FILTERS
        " ORDER BY created_at DESC, sequence DESC, event_id DESC LIMIT $6");

int
events_db_list(struct db *db, const struct events_filter *f, json_t **list,
               struct app_err *err)
{
    const char *p[] = {f->owner,          f->customer_id,    f->event_types,
                       f->publish_status, f->deliver_status, f->limit};
    *list = NULL;
    PGresult *res = db_exec(db, f->newest_first ? &events_list_desc
                                                : &events_list_asc,
                            p, err);
    if (res == NULL)
        return -1;
    *list = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(*list, db_row_object(res, i));
    PQclear(res);
    return 0;
}
