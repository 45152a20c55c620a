/*
 * fcgi-app/db/tags_db.c — see tags_db.h.
 */
#include "tags_db.h"

#include <stdlib.h>
#include <string.h>

DB_STMT(tags_all, 1,
        "SELECT COALESCE(json_object_agg(tag_key, tag_value "
        "                ORDER BY tag_key COLLATE \"C\"), '{}') "
        "  FROM customer_tags WHERE customer_id = $1");

/* The pairs travel as one JSON object parameter, never as SQL text. */
DB_STMT(tags_insert, 2,
        "INSERT INTO customer_tags (customer_id, tag_key, tag_value, "
        "                           created_at, updated_at) "
        "SELECT $1, key, value, clock_timestamp(), clock_timestamp() "
        "  FROM json_each_text($2::json)");

DB_STMT(tags_get, 3,
        "SELECT t.tag_value FROM customer_tags t "
        "  JOIN customers c USING (customer_id) "
        " WHERE t.customer_id = $1 AND t.tag_key = $3 "
        "   AND ($2::uuid IS NULL OR c.consumer_id = $2)");

DB_STMT(tags_delete, 2,
        "DELETE FROM customer_tags WHERE customer_id = $1 AND tag_key = $2");

DB_STMT(tags_rename, 3,
        "UPDATE customer_tags SET tag_key = $3, updated_at = clock_timestamp() "
        " WHERE customer_id = $1 AND tag_key = $2");

DB_STMT(tags_set_value, 3,
        "UPDATE customer_tags SET tag_value = $3, "
        "       updated_at = clock_timestamp() "
        " WHERE customer_id = $1 AND tag_key = $2");

int
tags_db_all(struct db *db, const char *customer_id, json_t **tags,
            struct app_err *err)
{
    const char *p[] = {customer_id};
    *tags = NULL;
    PGresult *res = db_exec(db, &tags_all, p, err);
    if (res == NULL)
        return -1;
    *tags = json_loads(PQgetvalue(res, 0, 0), JSON_ALLOW_NUL, NULL);
    PQclear(res);
    if (!json_is_object(*tags)) {
        json_decref(*tags);
        *tags = NULL;
        err_set(err, 500, "Internal error reading a customer's tags");
        return -1;
    }
    return 0;
}

int
tags_db_insert(struct db *db, const char *customer_id, const json_t *tags,
               struct app_err *err)
{
    char *text = json_dumps(tags, JSON_COMPACT);
    if (text == NULL) {
        err_set(err, 500, "Out of memory writing tags");
        return -1;
    }
    const char *p[] = {customer_id, text};
    int rc = db_exec_command(db, &tags_insert, p, err);
    free(text);
    return rc;
}

int
tags_db_get(struct db *db, const char *customer_id, const char *owner,
            const char *tag_key, char **value, struct app_err *err)
{
    const char *p[] = {customer_id, owner, tag_key};
    *value = NULL;
    PGresult *res = db_exec(db, &tags_get, p, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1) {
        *value = strdup(PQgetvalue(res, 0, 0));
        if (*value == NULL) {
            err_set(err, 500, "Out of memory reading a tag");
            rc = -1;
        }
    }
    PQclear(res);
    return rc;
}

int
tags_db_delete(struct db *db, const char *customer_id, const char *tag_key,
               bool *found, struct app_err *err)
{
    const char *p[] = {customer_id, tag_key};
    return db_exec_changed(db, &tags_delete, p, found, err);
}

int
tags_db_rename(struct db *db, const char *customer_id, const char *tag_key,
               const char *new_key, bool *found, struct app_err *err)
{
    const char *p[] = {customer_id, tag_key, new_key};
    return db_exec_changed(db, &tags_rename, p, found, err);
}

int
tags_db_set_value(struct db *db, const char *customer_id, const char *tag_key,
                  const char *value, bool *found, struct app_err *err)
{
    const char *p[] = {customer_id, tag_key, value};
    return db_exec_changed(db, &tags_set_value, p, found, err);
}
