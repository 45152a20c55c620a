/*
 * fcgi-app/core/http_status.c — lookups over HTTP_STATUS_LIST.
 */
#include "http_status.h"

const char *
http_status_name(int code)
{
    switch (code) {
#define X(c, name, reason)                                                     \
    case c:                                                                    \
        return #name;
        HTTP_STATUS_LIST(X)
#undef X
    default:
        return "INTERNAL_SERVER_ERROR";
    }
}

const char *
http_status_reason(int code)
{
    switch (code) {
#define X(c, name, reason)                                                     \
    case c:                                                                    \
        return reason;
        HTTP_STATUS_LIST(X)
#undef X
    default:
        return "Internal Server Error";
    }
}

int
http_status_known(int code)
{
    switch (code) {
#define X(c, name, reason) case c:
        HTTP_STATUS_LIST(X)
#undef X
        return 1;
    default:
        return 0;
    }
}
