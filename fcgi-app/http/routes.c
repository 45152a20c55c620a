/*
 * fcgi-app/http/routes.c — the route table: every endpoint, who may call
 * it, and the fields it takes.  The pipeline (pipeline.c) runs the same
 * gate for each: path (404) → method (405) → key (401/403) → administrator
 * (403) → body is JSON (400) → fields (422) → handler.
 */
#include "router.h"
#include "../handlers/handler.h"

static const char *const customer_statuses[] = {"ACTIVE", "INACTIVE", NULL};

#define F_CUSTOMER_ID                                                          \
    {                                                                          \
        .name = "customer_id", .type = FT_UUID, .required = true               \
    }

static const char *const event_types[] = {
    "customer_creation",   "customer_deletion",    "customer_status_change",
    "customer_tag_change", "consumer_creation",    "consumer_status_change",
    "api_key_creation",    "api_key_deactivation", NULL};
static const char *const publish_statuses[] = {"pending", "published", "failed",
                                               NULL};
static const char *const deliver_statuses[] = {"pending", "delivered", "failed",
                                               NULL};
static const char *const orders[] = {"asc", "desc", NULL};
static const char *const consumer_statuses[] = {"ACTIVE", "DEACTIVATED", NULL};

#define F_TAG_KEY(n)                                                           \
    {                                                                          \
        .name = n, .type = FT_TAG_KEY, .required = true                        \
    }
#define F_LIMIT                                                                \
    {                                                                          \
        .name = "limit", .type = FT_INT, .min = 1, .max = 1000                 \
    }

static const struct field_spec customer_create_fields[] = {
    {.name = "name", .type = FT_NAME, .required = true, .min = 1, .max = 255},
    {.name = "status", .type = FT_ENUM, .choices = customer_statuses},
    {.name = "tags", .type = FT_TAGS, .max = 100},
    {.name = NULL},
};

static const struct field_spec tag_add_fields[] = {
    F_CUSTOMER_ID,
    {.name = "tag_keys",
     .type = FT_STRING_ARRAY,
     .required = true,
     .min = 1,
     .max = 100,
     .elem = FT_TAG_KEY},
    {.name = "tag_values",
     .type = FT_STRING_ARRAY,
     .required = true,
     .min = 1,
     .max = 100,
     .elem = FT_STRING,
     .elem_min = 0,
     .elem_max = 1024},
    {.name = NULL},
};

static const struct field_spec tag_key_fields[] = {
    F_CUSTOMER_ID,
    F_TAG_KEY("tag_key"),
    {.name = NULL},
};

static const struct field_spec tag_rename_fields[] = {
    F_CUSTOMER_ID,
    F_TAG_KEY("tag_key"),
    F_TAG_KEY("new_tag_key"),
    {.name = NULL},
};

static const struct field_spec tag_value_fields[] = {
    F_CUSTOMER_ID,
    F_TAG_KEY("tag_key"),
    {.name = "new_tag_value",
     .type = FT_STRING,
     .required = true,
     .min = 0,
     .max = 1024},
    {.name = NULL},
};

#define F_CONSUMER_ID                                                          \
    {                                                                          \
        .name = "consumer_id", .type = FT_UUID, .required = true               \
    }
#define F_API_KEY                                                              \
    {                                                                          \
        .name = "api_key", .type = FT_STRING, .required = true, .min = 1,      \
        .max = 512                                                             \
    }

static const struct field_spec consumer_create_fields[] = {
    {.name = "consumer_name", .type = FT_CONSUMER_NAME, .required = true},
    {.name = NULL},
};

static const struct field_spec consumer_id_fields[] = {
    F_CONSUMER_ID,
    {.name = NULL},
};

static const struct field_spec consumer_status_fields[] = {
    F_CONSUMER_ID,
    {.name = "status",
     .type = FT_ENUM,
     .required = true,
     .choices = consumer_statuses},
    {.name = NULL},
};

static const struct field_spec key_create_fields[] = {
    F_CONSUMER_ID,
    {.name = "expires_in_days", .type = FT_INT, .min = 1, .max = 3650},
    {.name = "expires_in_seconds", .type = FT_INT, .min = 1, .max = 315360000},
    {.name = NULL},
};

static const struct field_spec key_fields[] = {
    F_API_KEY,
    {.name = NULL},
};

static const char *const receipt_statuses[] = {"received", "processed",
                                               "failed", NULL};

#define F_EVENT_TYPES                                                          \
    {                                                                          \
        .name = "event_types", .type = FT_ENUM_ARRAY, .min = 1, .max = 100,    \
        .choices = event_types                                                 \
    }
#define F_PERIOD                                                               \
    {                                                                          \
        .name = "period_in_days", .type = FT_INT, .required = true, .min = 1,  \
        .max = 3650                                                            \
    }
#define F_MAX_TRY                                                              \
    {                                                                          \
        .name = "max_try_count", .type = FT_INT, .min = 1, .max = 100          \
    }

static const struct field_spec resend_fields[] = {
    F_PERIOD,
    F_MAX_TRY,
    F_EVENT_TYPES,
    {.name = NULL},
};

static const struct field_spec redeliver_fields[] = {
    F_PERIOD,       F_MAX_TRY,
    F_EVENT_TYPES,  {.name = "consumer_id", .type = FT_UUID},
    {.name = NULL},
};

static const struct field_spec confirm_fields[] = {
    {.name = "event_id", .type = FT_UUID, .required = true},
    {.name = "status",
     .type = FT_ENUM,
     .required = true,
     .choices = receipt_statuses},
    {.name = "received_at", .type = FT_TIMESTAMP},
    {.name = "failure_reason", .type = FT_STRING, .min = 0, .max = 4096},
    {.name = NULL},
};

static const struct field_spec analytics_list_fields[] = {
    F_CUSTOMER_ID,
    F_LIMIT,
    {.name = NULL},
};

static const struct field_spec events_list_fields[] = {
    {.name = "customer_id", .type = FT_UUID},
    F_EVENT_TYPES,
    {.name = "publish_status", .type = FT_ENUM, .choices = publish_statuses},
    {.name = "deliver_status", .type = FT_ENUM, .choices = deliver_statuses},
    F_LIMIT,
    {.name = "order", .type = FT_ENUM, .choices = orders},
    {.name = NULL},
};

static const struct field_spec customer_id_fields[] = {
    F_CUSTOMER_ID,
    {.name = NULL},
};

static const struct field_spec customer_status_fields[] = {
    F_CUSTOMER_ID,
    {.name = "status",
     .type = FT_ENUM,
     .required = true,
     .choices = customer_statuses},
    {.name = NULL},
};

const struct route routes[] = {
    {"GET", "/health", health_get, ROUTE_PUBLIC | ROUTE_NO_INPUT, NULL},
    {"GET", "/metrics", metrics_get, ROUTE_PUBLIC | ROUTE_NO_INPUT | ROUTE_RAW,
     NULL},
    {"POST", "/customer/data", customers_create, 0, customer_create_fields},
    {"GET", "/customer/data", customers_get, 0, customer_id_fields},
    {"DELETE", "/customer/data", customers_delete, 0, customer_id_fields},
    {"PATCH", "/customer/change-status", customers_change_status, 0,
     customer_status_fields},
    {"POST", "/customer/tag", tags_add, 0, tag_add_fields},
    {"GET", "/customer/tag-value", tags_get_value, 0, tag_key_fields},
    {"DELETE", "/customer/tag", tags_delete, 0, tag_key_fields},
    {"PATCH", "/customer/tag-key", tags_rename_key, 0, tag_rename_fields},
    {"PATCH", "/customer/tag-value", tags_set_value, 0, tag_value_fields},
    {"POST", "/customer/analytics", analytics_create, 0, customer_id_fields},
    {"GET", "/customer/analytics", analytics_list, 0, analytics_list_fields},
    {"GET", "/events", events_list, 0, events_list_fields},
    {"POST", "/events/resend", events_resend, ROUTE_ADMIN | ROUTE_IDEM_AFTER,
     resend_fields},
    {"POST", "/events/redeliver", events_redeliver,
     ROUTE_ADMIN | ROUTE_IDEM_AFTER, redeliver_fields},
    /* takes nothing: any query parameter is an unknown field (422) */
    {"GET", "/events/health", events_health, ROUTE_ADMIN, NULL},
    {"POST", "/events/confirm-delivery", events_confirm_delivery, 0,
     confirm_fields},
    {"POST", "/consumer/data", consumers_create, ROUTE_ADMIN,
     consumer_create_fields},
    {"GET", "/consumer/data", consumers_get, 0, consumer_id_fields},
    {"POST", "/consumer/change-status", consumers_change_status, ROUTE_ADMIN,
     consumer_status_fields},
    {"POST", "/consumer/api-key", api_keys_create, ROUTE_ADMIN | ROUTE_NO_IDEM,
     key_create_fields},
    {"GET", "/consumer/api-key", api_keys_get, 0, key_fields},
    {"POST", "/consumer/deactivate-api-key", api_keys_deactivate, ROUTE_ADMIN,
     key_fields},
};

const size_t routes_count = sizeof routes / sizeof routes[0];
