/*
 * fcgi-app/http/routes.c — the route table: every endpoint, who may call
 * it, and the fields it takes.  The pipeline (pipeline.c) runs the same
 * gate for each: path (404) → method (405) → key (401/403) → administrator
 * (403) → body is JSON (400) → fields (422) → handler.
 */
#include "router.h"
#include "../handlers/handler.h"

static const char *const customer_statuses[] = {"ACTIVE", "INACTIVE", NULL};

#define F_CUSTOMER_ID {.name = "customer_id", .type = FT_UUID, .required = true}

static const struct field_spec customer_create_fields[] = {
    {.name = "name", .type = FT_NAME, .required = true, .min = 1, .max = 255},
    {.name = "status", .type = FT_ENUM, .choices = customer_statuses},
    {.name = NULL},
};

static const struct field_spec customer_id_fields[] = {
    F_CUSTOMER_ID,
    {.name = NULL},
};

static const struct field_spec customer_status_fields[] = {
    F_CUSTOMER_ID,
    {.name = "status", .type = FT_ENUM, .required = true,
     .choices = customer_statuses},
    {.name = NULL},
};

const struct route routes[] = {
    {"GET", "/health", health_get, ROUTE_PUBLIC | ROUTE_NO_INPUT, NULL},
    {"POST", "/customer/data", customers_create, 0, customer_create_fields},
    {"GET", "/customer/data", customers_get, 0, customer_id_fields},
    {"DELETE", "/customer/data", customers_delete, 0, customer_id_fields},
    {"PATCH", "/customer/change-status", customers_change_status, 0,
     customer_status_fields},
};

const size_t routes_count = sizeof routes / sizeof routes[0];
