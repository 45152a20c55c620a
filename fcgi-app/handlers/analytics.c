/*
 * fcgi-app/handlers/analytics.c — POST and GET /customer/analytics.
 */
#include "handler.h"
#include "../db/analytics_db.h"
#include "../db/customers_db.h"

#include <stdio.h>

int
analytics_create(struct ctx *c, json_t **data, struct app_err *err)
{
    const char *id = ctx_str(c, "customer_id");
    if (analytics_db_snapshot(c->db, id, ctx_owner_filter(c), data, err) < 0)
        return err->status;
    if (*data == NULL)
        return customer_not_found(id, err);
    return 201;
}

int
analytics_list(struct ctx *c, json_t **data, struct app_err *err)
{
    const char *id = ctx_str(c, "customer_id");
    const char *owner = ctx_owner_filter(c);
    json_t *limit = json_object_get(c->in, "limit");
    char limit_text[24];
    json_t *list = NULL;
    struct customer cu = {0};
    int status = 500;

    snprintf(limit_text, sizeof limit_text, "%lld",
             limit ? (long long)json_integer_value(limit) : 100LL);
    if (analytics_db_list(c->db, id, owner, limit_text, &list, err) < 0)
        goto out;
    /* A deleted customer's snapshots stay readable; 404 only when there is
     * neither a customer nor a snapshot of the caller's. */
    if (json_array_size(list) == 0) {
        if (customers_db_get(c->db, id, owner, &cu, err) < 0)
            goto out;
        if (!cu.found) {
            customer_not_found(id, err);
            goto out;
        }
    }
    *data = json_pack("{s:O}", "snapshots", list);
    status = 200;
out:
    json_decref(list);
    customer_free(&cu);
    return handler_done(c, status, err);
}
