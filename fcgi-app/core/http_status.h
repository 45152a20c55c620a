/*
 * fcgi-app/core/http_status.h — the HTTP statuses this service answers with,
 * generated from one X-macro list so the code, the contract's status_name
 * and the reason phrase cannot drift apart.
 */
#ifndef FI_HTTP_STATUS_H
#define FI_HTTP_STATUS_H

/* X(code, NAME, "Reason Phrase") */
#define HTTP_STATUS_LIST(X)                                                    \
    X(200, OK, "OK")                                                           \
    X(201, CREATED, "Created")                                                 \
    X(400, BAD_REQUEST, "Bad Request")                                         \
    X(401, UNAUTHORIZED, "Unauthorized")                                       \
    X(403, FORBIDDEN, "Forbidden")                                             \
    X(404, NOT_FOUND, "Not Found")                                             \
    X(405, METHOD_NOT_ALLOWED, "Method Not Allowed")                           \
    X(409, CONFLICT, "Conflict")                                               \
    X(413, PAYLOAD_TOO_LARGE, "Payload Too Large")                             \
    X(422, UNPROCESSABLE_ENTITY, "Unprocessable Entity")                       \
    X(429, TOO_MANY_REQUESTS, "Too Many Requests")                             \
    X(500, INTERNAL_SERVER_ERROR, "Internal Server Error")                     \
    X(501, NOT_IMPLEMENTED, "Not Implemented")                                 \
    X(502, BAD_GATEWAY, "Bad Gateway")                                         \
    X(503, SERVICE_UNAVAILABLE, "Service Unavailable")                         \
    X(504, GATEWAY_TIMEOUT, "Gateway Timeout")

enum http_status {
#define X(code, name, reason) HTTP_##name = code,
    HTTP_STATUS_LIST(X)
#undef X
};

/* "BAD_REQUEST" for 400; "INTERNAL_SERVER_ERROR" for unknown codes. */
const char *http_status_name(int code);
/* "Bad Request" for 400; "Internal Server Error" for unknown codes. */
const char *http_status_reason(int code);
/* Whether `code` is one of the list above. */
int http_status_known(int code);

#endif
