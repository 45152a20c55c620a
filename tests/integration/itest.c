/*
 * tests/integration/itest.c — shared helpers for the integration suite.
 *
 * HTTP through libcurl (one connection cache per thread), envelope checks
 * against docs/API.md §3.1, SQL through one libpq connection owned by the main
 * thread, consumers and keys written straight in SQL, /proc helpers for
 * the FastCGI pool, child processes (spawn, stop, restart the pool with
 * another environment), outbox backlogs written in SQL and re-drive
 * summaries. Contracts are in itest.h.
 */
#include "itest.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

/* ------------------------------------------------------------------ env */

static _Thread_local CURL *t_curl;
static _Thread_local long t_timeout_ms = 15000;
static const char *g_base_url;
static volatile int g_any_failure;
static const char *g_db_url;
static const char *g_admin_key;
static bool g_initialised;

int
itest_init(void)
{
    if (g_initialised)
        return 0;
    g_base_url = getenv("FINTEGRATE_BASE_URL");
    g_db_url = getenv("FINTEGRATE_DB_URL");
    g_admin_key = getenv("FINTEGRATE_ADMIN_API_KEY");
    int missing = 0;
    if (g_base_url == NULL || *g_base_url == '\0') {
        fprintf(stderr, "itest: FINTEGRATE_BASE_URL is not set "
                        "(e.g. http://127.0.0.1:18080)\n");
        missing = 1;
    }
    if (g_db_url == NULL || *g_db_url == '\0') {
        fprintf(stderr, "itest: FINTEGRATE_DB_URL is not set "
                        "(a libpq conninfo for the stack's database)\n");
        missing = 1;
    }
    if (g_admin_key == NULL || *g_admin_key == '\0') {
        fprintf(stderr, "itest: FINTEGRATE_ADMIN_API_KEY is not set\n");
        missing = 1;
    }
    if (missing)
        return -1;
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        fprintf(stderr, "itest: curl_global_init failed\n");
        return -1;
    }
    json_object_seed(0);
    g_initialised = true;
    return 0;
}

const char *
itest_env(const char *name)
{
    const char *v = getenv(name);
    return (v != NULL && *v != '\0') ? v : NULL;
}

const char *
itest_admin_key(void)
{
    return g_admin_key;
}

const char *
itest_base_url(void)
{
    return g_base_url;
}

int
itest_exit(int failures)
{
    if (g_any_failure) {
        fflush(NULL);
        _exit(failures ? failures : 1);
    }
    return failures;
}

int
itest_group_setup(void **state)
{
    (void)state;
    return itest_init();
}

static PGconn *g_pg;

int
itest_group_teardown(void **state)
{
    (void)state;
    itest_thread_done();
    if (g_pg != NULL) {
        PQfinish(g_pg);
        g_pg = NULL;
    }
    return 0;
}

double
itest_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ----------------------------------------------------------------- HTTP */

void
itest_thread_done(void)
{
    if (t_curl != NULL) {
        curl_easy_cleanup(t_curl);
        t_curl = NULL;
    }
}

void
itest_set_timeout_ms(long ms)
{
    t_timeout_ms = ms;
}

struct buf {
    char *p;
    size_t len, cap;
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    buf_add(userdata, ptr, size * nmemb);
    return size * nmemb;
}

static char *
xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        abort();
    return p;
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct itest_resp *resp = userdata;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        /* A new status line (e.g. after 100 Continue): forget the old. */
        for (size_t i = 0; i < resp->n_headers; i++) {
            free(resp->headers[i].name);
            free(resp->headers[i].value);
        }
        resp->n_headers = 0;
        return n;
    }
    const char *colon = memchr(ptr, ':', n);
    if (colon == NULL)
        return n;
    size_t name_len = (size_t)(colon - ptr);
    const char *v = colon + 1;
    const char *end = ptr + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
                       end[-1] == '\t'))
        end--;
    struct itest_header_line *h =
        realloc(resp->headers, (resp->n_headers + 1) * sizeof(*h));
    if (h == NULL)
        abort();
    resp->headers = h;
    h[resp->n_headers].name = xstrndup(ptr, name_len);
    h[resp->n_headers].value = xstrndup(v, (size_t)(end - v));
    resp->n_headers++;
    return n;
}

static bool
headers_name(const char *headers, const char *name)
{
    /* Does a '\n'-separated header list set this header name? */
    size_t nl = strlen(name);
    const char *p = headers;
    while (p != NULL && *p != '\0') {
        if (strncasecmp(p, name, nl) == 0 && (p[nl] == ':' || p[nl] == ';'))
            return true;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return false;
}

struct itest_resp *
itest_request_n(const char *method, const char *path_and_query,
                const char *api_key, const char *body, size_t body_len,
                const char *extra_header)
{
    struct itest_resp *resp = calloc(1, sizeof(*resp));
    if (resp == NULL)
        abort();
    resp->method = xstrndup(method, strlen(method));
    resp->target = xstrndup(path_and_query, strlen(path_and_query));

    if (t_curl == NULL) {
        t_curl = curl_easy_init();
        if (t_curl == NULL)
            abort();
    } else {
        curl_easy_reset(t_curl); /* keeps the connection cache */
    }
    CURL *c = t_curl;

    struct buf url = {0};
    buf_add(&url, g_base_url, strlen(g_base_url));
    buf_add(&url, path_and_query, strlen(path_and_query));

    struct curl_slist *hl = NULL;
    struct buf hb = {0};
    hl = curl_slist_append(hl, "Expect:");
    if (api_key != NULL) {
        buf_add(&hb, "X-API-Key: ", 11);
        buf_add(&hb, api_key, strlen(api_key));
        hl = curl_slist_append(hl, hb.p);
        hb.len = 0;
    }
    if (body != NULL &&
        (extra_header == NULL || !headers_name(extra_header, "Content-Type")))
        hl = curl_slist_append(hl, "Content-Type: application/json");
    if (extra_header != NULL) {
        const char *p = extra_header;
        while (*p != '\0') {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            if (n > 0) {
                hb.len = 0;
                buf_add(&hb, p, n);
                hl = curl_slist_append(hl, hb.p);
            }
            p += n;
            if (*p == '\n')
                p++;
        }
    }

    struct buf bodybuf = {0};
    buf_add(&bodybuf, "", 0);
    char errbuf[CURL_ERROR_SIZE] = "";

    curl_easy_setopt(c, CURLOPT_URL, url.p);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bodybuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, t_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);

    bool post_like = strcmp(method, "POST") == 0 ||
                     strcmp(method, "PATCH") == 0 || strcmp(method, "PUT") == 0;
    if (body != NULL || post_like) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(body ? body_len : 0));
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    }
    if (strcmp(method, "GET") == 0 && body == NULL)
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);

    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        resp->status = 0;
        snprintf(resp->error, sizeof(resp->error), "%s: %s",
                 curl_easy_strerror(rc), errbuf);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    }
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &resp->elapsed);
    resp->body = bodybuf.p;
    resp->body_len = bodybuf.len;
    if (resp->body_len > 0) {
        json_error_t jerr;
        resp->json = json_loadb(resp->body, resp->body_len,
                                JSON_REJECT_DUPLICATES, &jerr);
    }
    curl_slist_free_all(hl);
    free(url.p);
    free(hb.p);
    return resp;
}

struct itest_resp *
itest_request(const char *method, const char *path_and_query,
              const char *api_key, const char *body, const char *extra_header)
{
    return itest_request_n(method, path_and_query, api_key, body,
                           body ? strlen(body) : 0, extra_header);
}

struct itest_resp *
itest_raw_request(const char *bytes, size_t len, const char *label,
                  long timeout_ms)
{
    struct itest_resp *resp = calloc(1, sizeof(*resp));
    if (resp == NULL)
        abort();
    resp->method = xstrndup("RAW", 3);
    resp->target = xstrndup(label, strlen(label));
    char host[64] = "";
    int port = 80;
    if (sscanf(g_base_url, "http://%63[^:/]:%d", host, &port) < 1) {
        snprintf(resp->error, sizeof(resp->error), "cannot parse %s",
                 g_base_url);
        return resp;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(resp->error, sizeof(resp->error), "connect to %s:%d: %s", host,
                 port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return resp;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, bytes + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    struct buf in = {0};
    buf_add(&in, "", 0);
    double deadline = itest_now() + (double)timeout_ms / 1000.0;
    for (;;) {
        double left = deadline - itest_now();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            break;
        char chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0)
            break;
        buf_add(&in, chunk, (size_t)n);
    }
    close(fd);

    /* Status line, headers, body. */
    long status = 0;
    char *hdr_end = strstr(in.p, "\r\n\r\n");
    if (sscanf(in.p, "HTTP/%*d.%*d %ld", &status) == 1 && hdr_end != NULL) {
        resp->status = status;
        char *line = strstr(in.p, "\r\n") + 2;
        while (line < hdr_end) {
            char *eol = strstr(line, "\r\n");
            on_header(line, 1, (size_t)(eol + 2 - line), resp);
            line = eol + 2;
        }
        char *body = hdr_end + 4;
        resp->body_len = in.len - (size_t)(body - in.p);
        resp->body = xstrndup(body, resp->body_len);
        if (resp->body_len > 0)
            resp->json = json_loadb(resp->body, resp->body_len,
                                    JSON_REJECT_DUPLICATES, NULL);
    } else {
        snprintf(resp->error, sizeof(resp->error),
                 "no HTTP response (%zu bytes)", in.len);
        resp->body = xstrndup(in.p, in.len);
        resp->body_len = in.len;
    }
    free(in.p);
    return resp;
}

struct itest_resp *
itest_requestf(const char *method, const char *api_key, const char *body,
               const char *path_fmt, ...)
{
    char path[4096];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    return itest_request(method, path, api_key, body, NULL);
}

void
itest_resp_free(struct itest_resp *resp)
{
    if (resp == NULL)
        return;
    for (size_t i = 0; i < resp->n_headers; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    free(resp->body);
    json_decref(resp->json);
    free(resp->method);
    free(resp->target);
    free(resp);
}

const char *
itest_header(const struct itest_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

void
itest_dump(const struct itest_resp *resp)
{
    if (resp == NULL)
        return;
    const char *rid = itest_header(resp, "X-Request-ID");
    size_t tl = strlen(resp->target);
    fprintf(stderr, "  request:  %s %.*s%s\n", resp->method,
            (int)(tl > 200 ? 200 : tl), resp->target,
            tl > 200 ? "… (truncated)" : "");
    if (resp->status == 0)
        fprintf(stderr, "  failed:   %s\n", resp->error);
    else
        fprintf(stderr, "  status:   %ld  (X-Request-ID %s, %.3f s)\n",
                resp->status, rid ? rid : "<none>", resp->elapsed);
    for (size_t i = 0; i < resp->n_headers; i++)
        fprintf(stderr, "  header:   %s: %s\n", resp->headers[i].name,
                resp->headers[i].value);
    if (resp->body != NULL) {
        size_t n = resp->body_len > 2000 ? 2000 : resp->body_len;
        fprintf(stderr, "  body:     %.*s%s\n", (int)n, resp->body,
                n < resp->body_len ? "…" : "");
    }
}

/* --------------------------------------------------------- JSON helpers */

json_t *
itest_data(const struct itest_resp *resp)
{
    json_t *d = resp->json ? json_object_get(resp->json, "data") : NULL;
    return json_is_object(d) ? d : NULL;
}

const char *
itest_desc(const struct itest_resp *resp)
{
    json_t *det = resp->json ? json_object_get(resp->json, "detail") : NULL;
    return json_string_value(json_object_get(det, "status_description"));
}

const char *
itest_jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

long
itest_jint(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : -1;
}

char *
itest_json_text(json_t *v)
{
    if (v == NULL)
        abort();
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (s == NULL)
        abort();
    return s;
}

/* ------------------------------------------------------------- checkers */

bool
itest_is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!((s[i] >= '0' && s[i] <= '9') ||
                     (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

bool
itest_is_timestamp(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS.ffffffZ */
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    if (s == NULL || strlen(s) != sizeof(pat) - 1)
        return false;
    for (size_t i = 0; i < sizeof(pat) - 1; i++) {
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
            return false;
    }
    int mon = (s[5] - '0') * 10 + (s[6] - '0');
    int day = (s[8] - '0') * 10 + (s[9] - '0');
    int hh = (s[11] - '0') * 10 + (s[12] - '0');
    int mm = (s[14] - '0') * 10 + (s[15] - '0');
    int ss = (s[17] - '0') * 10 + (s[18] - '0');
    return mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hh <= 23 &&
           mm <= 59 && ss <= 60;
}

bool
itest_is_request_id(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n < 1 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

/* ----------------------------------------------------------- assertions */

static void
vfail(const char *file, int line, const struct itest_resp *resp,
      const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    itest_dump(resp);
    fflush(stderr);
    print_error("%s:%d: %s\n", file, line, msg);
    g_any_failure = 1;
    _fail(file, line);
    abort(); /* not reached: _fail longjmps out of the test */
}

static void __attribute__((format(printf, 4, 5), noreturn))
fail_resp(const char *file, int line, const struct itest_resp *resp,
          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(file, line, resp, fmt, ap);
    va_end(ap);
    abort();
}

void
itest_failf_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(file, line, NULL, fmt, ap);
    va_end(ap);
    abort();
}

void
itest_expect_at(const char *file, int line, const struct itest_resp *resp,
                bool cond, const char *fmt, ...)
{
    if (cond)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfail(file, line, resp, fmt, ap);
    va_end(ap);
}

static const struct {
    long code;
    const char *name;
} STATUS_NAMES[] = {
    {200, "OK"},
    {201, "CREATED"},
    {400, "BAD_REQUEST"},
    {401, "UNAUTHORIZED"},
    {403, "FORBIDDEN"},
    {404, "NOT_FOUND"},
    {405, "METHOD_NOT_ALLOWED"},
    {409, "CONFLICT"},
    {413, "PAYLOAD_TOO_LARGE"},
    {414, "URI_TOO_LONG"}, /* not in §1.1's list; RFC 9110's name */
    {422, "UNPROCESSABLE_ENTITY"},
    {429, "TOO_MANY_REQUESTS"},
    {500, "INTERNAL_SERVER_ERROR"},
    {501, "NOT_IMPLEMENTED"},
    {502, "BAD_GATEWAY"},
    {503, "SERVICE_UNAVAILABLE"},
    {504, "GATEWAY_TIMEOUT"},
};

static const char *
status_name(long code)
{
    for (size_t i = 0; i < sizeof(STATUS_NAMES) / sizeof(STATUS_NAMES[0]); i++)
        if (STATUS_NAMES[i].code == code)
            return STATUS_NAMES[i].name;
    return NULL;
}

/* Text that means a library or the database leaked into a message. */
static const char *const LEAK_MARKERS[] = {
    "SQLSTATE", "ERROR:",  "violates", "duplicate key value", "expected near",
    "near '",   "jansson", "libpq",    "relation \"",
};

json_t *
itest_assert_envelope_at(const char *file, int line,
                         const struct itest_resp *resp, long expected_status)
{
    if (resp->status != expected_status)
        fail_resp(file, line, resp, "expected HTTP %ld, got %ld",
                  expected_status, resp->status);
    const char *ct = itest_header(resp, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))
        fail_resp(file, line, resp,
                  "Content-Type must be application/json, got %s",
                  ct ? ct : "<none>");
    const char *rid = itest_header(resp, "X-Request-ID");
    if (rid == NULL || *rid == '\0')
        fail_resp(file, line, resp, "X-Request-ID header missing");
    if (!json_is_object(resp->json))
        fail_resp(file, line, resp, "body is not a JSON object");
    if (json_object_size(resp->json) != 2)
        fail_resp(file, line, resp,
                  "envelope must have exactly \"data\" and \"detail\" "
                  "(has %zu members)",
                  json_object_size(resp->json));
    json_t *data = json_object_get(resp->json, "data");
    json_t *detail = json_object_get(resp->json, "detail");
    if (!json_is_object(data))
        fail_resp(file, line, resp, "\"data\" must be an object");
    if (!json_is_object(detail))
        fail_resp(file, line, resp, "\"detail\" must be an object");
    if (json_object_size(detail) != 3)
        fail_resp(file, line, resp,
                  "\"detail\" must have exactly status_code, status_name, "
                  "status_description");
    const char *code =
        json_string_value(json_object_get(detail, "status_code"));
    const char *name =
        json_string_value(json_object_get(detail, "status_name"));
    const char *desc =
        json_string_value(json_object_get(detail, "status_description"));
    char want_code[16];
    snprintf(want_code, sizeof(want_code), "%ld", resp->status);
    if (code == NULL || strcmp(code, want_code) != 0)
        fail_resp(file, line, resp,
                  "detail.status_code must be the string \"%s\"", want_code);
    const char *want_name = status_name(resp->status);
    if (want_name == NULL)
        fail_resp(file, line, resp, "status %ld: no name in docs/API.md §3.2",
                  resp->status);
    if (name == NULL || strcmp(name, want_name) != 0)
        fail_resp(file, line, resp, "detail.status_name must be \"%s\"",
                  want_name);
    if (desc == NULL)
        fail_resp(file, line, resp,
                  "detail.status_description must be a string");
    if (resp->status >= 200 && resp->status < 300) {
        if (strcmp(desc, "Success") != 0)
            fail_resp(file, line, resp,
                      "status_description must be exactly \"Success\"");
    } else {
        if (strlen(desc) < 5)
            fail_resp(file, line, resp,
                      "an error's status_description must be a sentence");
        if (strcmp(desc, "Success") == 0)
            fail_resp(file, line, resp,
                      "an error must not be described as \"Success\"");
        if (json_object_size(data) != 0)
            fail_resp(file, line, resp, "on errors \"data\" must be {}");
        for (size_t i = 0; i < sizeof(LEAK_MARKERS) / sizeof(LEAK_MARKERS[0]);
             i++)
            if (strstr(desc, LEAK_MARKERS[i]) != NULL)
                fail_resp(file, line, resp,
                          "status_description looks like a database or "
                          "library message (contains \"%s\")",
                          LEAK_MARKERS[i]);
    }
    return data;
}

void
itest_assert_error_at(const char *file, int line, const struct itest_resp *resp,
                      long expected_status, const char *exact_desc,
                      const char *needle)
{
    itest_assert_envelope_at(file, line, resp, expected_status);
    const char *desc = itest_desc(resp);
    if (exact_desc != NULL && strcmp(desc, exact_desc) != 0)
        fail_resp(file, line, resp, "status_description must be exactly: %s",
                  exact_desc);
    if (needle != NULL && strstr(desc, needle) == NULL)
        fail_resp(file, line, resp, "status_description must mention: %s",
                  needle);
}

void
itest_assert_keys_at(const char *file, int line, const struct itest_resp *resp,
                     const json_t *obj, ...)
{
    if (!json_is_object(obj))
        fail_resp(file, line, resp, "expected a JSON object");
    va_list ap;
    va_start(ap, obj);
    size_t n = 0;
    const char *k;
    char want[1024] = "";
    while ((k = va_arg(ap, const char *)) != NULL) {
        n++;
        if (strlen(want) + strlen(k) + 3 < sizeof(want)) {
            strcat(want, k);
            strcat(want, " ");
        }
        if (json_object_get(obj, k) == NULL) {
            va_end(ap);
            fail_resp(file, line, resp, "member \"%s\" missing", k);
        }
    }
    va_end(ap);
    if (json_object_size(obj) != n) {
        char *got = json_dumps(obj, JSON_COMPACT);
        fail_resp(file, line, resp,
                  "object must have exactly the members { %s}, has %s", want,
                  got ? got : "?");
    }
}

void
itest_assert_jstr_at(const char *file, int line, const struct itest_resp *resp,
                     const json_t *obj, const char *key, const char *expected)
{
    const char *v = json_string_value(json_object_get(obj, key));
    if (v == NULL)
        fail_resp(file, line, resp, "member \"%s\" must be a string", key);
    if (strcmp(v, expected) != 0)
        fail_resp(file, line, resp, "member \"%s\" must be \"%s\", is \"%s\"",
                  key, expected, v);
}

char *
itest_desc_without(const struct itest_resp *resp, const char *id1,
                   const char *id2)
{
    const char *d = itest_desc(resp);
    char *out = malloc(strlen(d) + 1);
    char *o = out;
    size_t n1 = id1 ? strlen(id1) : 0, n2 = id2 ? strlen(id2) : 0;
    while (*d) {
        if (n1 > 0 && strncmp(d, id1, n1) == 0) {
            memcpy(o, "<id>", 4); /* shorter than any id used here */
            o += 4;
            d += n1;
        } else if (n2 > 0 && strncmp(d, id2, n2) == 0) {
            memcpy(o, "<id>", 4);
            o += 4;
            d += n2;
        } else {
            *o++ = *d++;
        }
    }
    *o = '\0';
    return out;
}

void
itest_expect_like_missing_at(const char *file, int line,
                             struct itest_resp *foreign, const char *x,
                             struct itest_resp *missing, const char *y,
                             long status)
{
    itest_assert_envelope_at(file, line, foreign, status);
    itest_assert_envelope_at(file, line, missing, status);
    if (status >= 400) {
        char *a = itest_desc_without(foreign, x, NULL);
        char *b = itest_desc_without(missing, y, NULL);
        itest_expect_at(file, line, foreign, strcmp(a, b) == 0,
                        "another consumer's customer must answer exactly like "
                        "a missing one: [%s] vs [%s]",
                        itest_desc(foreign), itest_desc(missing));
        free(a);
        free(b);
    }
    itest_resp_free(foreign);
    itest_resp_free(missing);
}

void
itest_assert_internal_error_at(const char *file, int line,
                               const struct itest_resp *resp)
{
    itest_assert_error_at(file, line, resp, 500, NULL, NULL);
    itest_expect_at(file, line, resp,
                    strstr(itest_desc(resp), "poison") == NULL &&
                        strstr(itest_desc(resp), "trigger") == NULL,
                    "the database's message must not reach the client");
}

/* ------------------------------------------------------- domain helpers */

/* POST /customer/data {"name": name}: the ids into id_out and (unless NULL)
 * event_out. */
static void
create_customer(const char *file, int line, const char *api_key,
                const char *name, char id_out[37], char event_out[37])
{
    char *body = itest_json_text(json_pack("{s:s}", "name", name));
    struct itest_resp *r =
        itest_request("POST", "/customer/data", api_key, body, NULL);
    free(body);
    json_t *data = itest_assert_envelope_at(file, line, r, 201);
    const char *id = itest_jstr(data, "customer_id");
    if (!itest_is_uuid(id))
        fail_resp(file, line, r, "customer_id must be a lower-case UUID");
    memcpy(id_out, id, 37);
    if (event_out != NULL) {
        const char *eid = itest_jstr(data, "event_id");
        if (!itest_is_uuid(eid))
            fail_resp(file, line, r, "event_id must be a lower-case UUID");
        memcpy(event_out, eid, 37);
    }
    itest_resp_free(r);
}

void
itest_create_customer_at(const char *file, int line, const char *api_key,
                         const char *name, char id_out[37])
{
    create_customer(file, line, api_key, name, id_out, NULL);
}

void
itest_make_customer_event_at(const char *file, int line, const char *api_key,
                             const char *prefix, char id_out[37],
                             char event_out[37])
{
    char name[96];
    itest_unique(name, sizeof(name), prefix);
    create_customer(file, line, api_key, name, id_out, event_out);
}

void
itest_make_customer_at(const char *file, int line, const char *api_key,
                       const char *prefix, char id_out[37])
{
    char name[96];
    itest_unique(name, sizeof(name), prefix);
    itest_create_customer_at(file, line, api_key, name, id_out);
}

struct itest_resp *
itest_get_customer(const char *api_key, const char *id)
{
    char fresh[37];
    if (id == NULL) {
        itest_random_uuid(fresh);
        id = fresh;
    }
    return itest_requestf("GET", api_key, NULL, "/customer/data?customer_id=%s",
                          id);
}

void
itest_warm_up_at(const char *file, int line, const char *api_key,
                 const char *id)
{
    for (int i = 0; i < 12; i++) {
        struct itest_resp *r = itest_get_customer(api_key, id);
        itest_assert_envelope_at(file, line, r, id != NULL ? 200 : 404);
        itest_resp_free(r);
    }
}

double
itest_await_answer_at(const char *file, int line, const char *api_key,
                      const char *id, double t0, long was_status, long status,
                      const char *desc)
{
    int streak = 0;
    double start = 0;
    for (;;) {
        struct itest_resp *r = itest_get_customer(api_key, id);
        double now = itest_now();
        if (r->status == status) {
            if (status >= 400)
                itest_assert_error_at(file, line, r, status, desc, NULL);
            else
                itest_assert_envelope_at(file, line, r, status);
            if (streak++ == 0)
                start = now;
            if (streak >= 8) {
                itest_resp_free(r);
                return start - t0;
            }
        } else {
            itest_expect_at(file, line, r, r->status == was_status,
                            "while waiting for %ld, got neither %ld nor %ld",
                            status, status, was_status);
            streak = 0;
            itest_expect_at(file, line, r, now - t0 <= 5.0,
                            "still answering %ld %.2f s after the change; "
                            "must be %ld within 5 s",
                            r->status, now - t0, status);
        }
        itest_resp_free(r);
        itest_sleep_ms(50);
    }
}

void
itest_unique(char *buf, size_t size, const char *prefix)
{
    static unsigned counter;
    unsigned char rnd[3];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        memset(rnd, 0, sizeof(rnd));
    snprintf(buf, size, "%s-%ld-%ld-%u-%02x%02x%02x", prefix, (long)getpid(),
             (long)time(NULL), ++counter, rnd[0], rnd[1], rnd[2]);
}

void
itest_random_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        abort();
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

char *
itest_upper(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return s;
}

char *
itest_repeat(const char *unit, int times)
{
    size_t n = strlen(unit);
    char *s = malloc(n * (size_t)times + 1);
    for (int i = 0; i < times; i++)
        memcpy(s + n * (size_t)i, unit, n);
    s[n * (size_t)times] = '\0';
    return s;
}

void
itest_fill_id(char *out, size_t size, const char *tmpl, const char *id)
{
    size_t o = 0;
    for (const char *p = tmpl; *p && o + 1 < size;) {
        if (strncmp(p, "@ID@", 4) == 0) {
            for (const char *q = id; *q && o + 1 < size; q++)
                out[o++] = *q;
            p += 4;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

char *
itest_slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return buf;
}

void
itest_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ SQL */

static PGconn *
pg_conn(void)
{
    if (g_pg != NULL && PQstatus(g_pg) == CONNECTION_OK)
        return g_pg;
    if (g_pg != NULL) {
        PQfinish(g_pg);
        g_pg = NULL;
    }
    g_pg = PQconnectdb(g_db_url);
    if (PQstatus(g_pg) != CONNECTION_OK)
        return NULL;
    PGresult *r = PQexec(g_pg, "SET client_min_messages = warning");
    PQclear(r);
    return g_pg;
}

PGresult *
itest_sql_try(const char *query, const char *const *params, int nparams)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = pg_conn();
        if (c == NULL)
            return NULL;
        PGresult *r =
            PQexecParams(c, query, nparams, NULL, params, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(r);
        if ((st == PGRES_FATAL_ERROR || r == NULL) &&
            PQstatus(c) != CONNECTION_OK && attempt == 0) {
            /* The server went away (a restart drill): reconnect, retry. */
            PQclear(r);
            continue;
        }
        return r;
    }
    return NULL;
}

PGresult *
itest_sql_at(const char *file, int line, const char *query,
             const char *const *params, int nparams)
{
    PGresult *r = itest_sql_try(query, params, nparams);
    if (r == NULL)
        itest_failf_at(file, line, "cannot connect to %s: %s", g_db_url,
                       g_pg ? PQerrorMessage(g_pg) : "?");
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        PQclear(r);
        itest_failf_at(file, line, "SQL failed: %s\n  query: %s", msg, query);
    }
    return r;
}

char *
itest_sql_value_at(const char *file, int line, const char *query,
                   const char *const *params, int nparams)
{
    PGresult *r = itest_sql_at(file, line, query, params, nparams);
    char *v = NULL;
    if (PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0))
        v = xstrndup(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    PQclear(r);
    return v;
}

long
itest_sql_long_at(const char *file, int line, const char *query,
                  const char *const *params, int nparams)
{
    char *v = itest_sql_value_at(file, line, query, params, nparams);
    if (v == NULL)
        itest_failf_at(file, line, "query returned no value: %s", query);
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0') {
        free(v);
        itest_failf_at(file, line, "query value is not an integer: %s", query);
    }
    free(v);
    return n;
}

void
itest_sql_ddl_at(const char *file, int line, const char *const *stmts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        PGresult *r = itest_sql_try(stmts[i], NULL, 0);
        if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
            const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
            if (st != NULL && strcmp(st, "42501") == 0) {
                print_message("      skipped: the test role may not create "
                              "triggers (%s)\n",
                              PQresultErrorMessage(r));
                PQclear(r);
                _skip(file, line);
            }
            itest_failf_at(file, line, "installing the test trigger failed: %s",
                           r ? PQresultErrorMessage(r) : "no connection");
        }
        PQclear(r);
    }
}

void
itest_sql_try_each(const char *const *stmts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        PQclear(itest_sql_try(stmts[i], NULL, 0));
}

void
itest_key_hash_at(const char *file, int line, const char *key, char out[65])
{
    char *h = itest_sql_value_at(
        file, line, "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')",
        (const char *const[]){key}, 1);
    snprintf(out, 65, "%s", h ? h : "");
    free(h);
}

/* ------------------------------------------------------------ consumers */

void
itest_random_key(char out[64])
{
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char b[33];
    if (getrandom(b, 32, 0) != 32)
        abort();
    b[32] = 0;
    char *p = out;
    *p++ = 'f';
    *p++ = 'k';
    *p++ = '_';
    /* 32 bytes → 43 base64url characters without padding. */
    for (int i = 0; i < 32; i += 3) {
        unsigned v = (unsigned)b[i] << 16 | (unsigned)b[i + 1] << 8 |
                     (i + 2 < 32 ? b[i + 2] : 0);
        *p++ = b64url[(v >> 18) & 63];
        *p++ = b64url[(v >> 12) & 63];
        *p++ = b64url[(v >> 6) & 63];
        if (i + 2 < 32)
            *p++ = b64url[v & 63];
    }
    *p = '\0';
}

void
itest_consumer_create_at(const char *file, int line, struct itest_consumer *out,
                         const char *consumer_status, const char *key_status,
                         const char *expires_in)
{
    char name[64];
    itest_unique(name, sizeof(name), "itest");
    /* consumer_name: ^[a-z0-9][a-z0-9_-]{0,62}$ */
    for (char *p = name; *p; p++)
        if (*p == '.')
            *p = '-';
    snprintf(out->name, sizeof(out->name), "%s", name);
    itest_random_uuid(out->id);
    itest_random_key(out->key);
    PGresult *r = itest_sql_at(
        file, line,
        "INSERT INTO consumers (consumer_id, consumer_name, status) "
        "VALUES ($1, $2, $3)",
        (const char *const[]){out->id, out->name, consumer_status}, 3);
    PQclear(r);
    r = itest_sql_at(
        file, line,
        "INSERT INTO consumer_api_keys (consumer_id, api_key_hash, "
        "api_key_prefix, api_key_status, expires_at) VALUES ($1, "
        "encode(sha256(convert_to($2, 'UTF8')), 'hex'), left($2, 11), $3, "
        "now() + $4::interval)",
        (const char *const[]){out->id, out->key, key_status, expires_in}, 4);
    PQclear(r);
}

int
itest_group_setup_consumers(void **state, struct itest_consumer *a,
                            struct itest_consumer *b)
{
    if (itest_group_setup(state) != 0)
        return -1;
    itest_consumer_create(a, "ACTIVE", "active", "1 day");
    if (b != NULL)
        itest_consumer_create(b, "ACTIVE", "active", "1 day");
    return 0;
}

/* --------------------------------------------------- FastCGI processes */

pid_t
itest_master_pid(void)
{
    const char *run = itest_env("FINTEGRATE_RUN_DIR");
    if (run == NULL)
        return -1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/fcgi.pid", run);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = -1;
    fclose(f);
    return (pid_t)pid;
}

/* Reads state and ppid from /proc/PID/stat; returns 0 on success. */
static int
proc_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[1024];
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    /* The command name is in parentheses and may hold spaces: skip to ')'. */
    char *p = strrchr(line, ')');
    if (p == NULL)
        return -1;
    char st;
    long pp;
    if (sscanf(p + 1, " %c %ld", &st, &pp) != 2)
        return -1;
    *state = st;
    *ppid = (pid_t)pp;
    return 0;
}

char
itest_proc_state(pid_t pid)
{
    char st;
    pid_t pp;
    return proc_stat(pid, &st, &pp) == 0 ? st : 0;
}

int
itest_children(pid_t parent, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        char st;
        pid_t pp;
        if (proc_stat((pid_t)pid, &st, &pp) == 0 && pp == parent && st != 'Z' &&
            st != 'X')
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

int
itest_stack(const char *verb)
{
    const char *checkout = itest_env("FINTEGRATE_CHECKOUT");
    if (checkout == NULL) {
        fprintf(stderr, "itest: FINTEGRATE_CHECKOUT is not set\n");
        return -1;
    }
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s/scripts/stack.sh' %s 1>&2", checkout, verb);
    fflush(stdout);
    fflush(stderr);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc))
        return -1;
    return WEXITSTATUS(rc);
}

/* ------------------------------------------------- processes, files */

int
itest_app_restart(void)
{
    if (itest_stack("app-stop") != 0) {
        fprintf(stderr, "itest: scripts/stack.sh app-stop failed\n");
        return -1;
    }
    if (itest_stack("app-start") != 0) {
        fprintf(stderr, "itest: scripts/stack.sh app-start failed\n");
        return -1;
    }
    return 0;
}

const char *
itest_consumer_bin(void)
{
    static char path[4096];
    const char *b = itest_env("FINTEGRATE_CONSUMER_BIN");
    if (b != NULL)
        return b;
    b = itest_env("FINTEGRATE_CHECKOUT");
    snprintf(path, sizeof(path), "%s/bin/fintegrate-consumer",
             b != NULL ? b : ".");
    return path;
}

/* Built before the signal can arrive; read by the handler only. */
static char g_signal_cmd[8192];

static void
on_stop_signal(int sig)
{
    if (g_signal_cmd[0] != '\0') {
        pid_t pid = fork();
        if (pid == 0) {
            char *const argv[] = {"/bin/sh", "-c", g_signal_cmd, NULL};
            execv("/bin/sh", argv);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    _exit(128 + sig);
}

void
itest_on_signal_run(const char *command)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    snprintf(g_signal_cmd, sizeof(g_signal_cmd), "%s",
             command != NULL ? command : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

void
itest_on_signal_restart_app(const char *before)
{
    char cmd[sizeof(g_signal_cmd)];
    snprintf(cmd, sizeof(cmd),
             "%1$s'%2$s/scripts/stack.sh' app-stop 1>&2; "
             "'%2$s/scripts/stack.sh' app-start 1>&2",
             before != NULL ? before : "", itest_env("FINTEGRATE_CHECKOUT"));
    itest_on_signal_run(cmd);
}

void
itest_ddl_fixture_install_at(const char *file, int line,
                             struct itest_ddl_fixture *f)
{
    f->installed = true; /* a half-done install is removed too */
    itest_sql_ddl_at(file, line, f->create, f->n_create);
}

int
itest_ddl_fixture_remove(struct itest_ddl_fixture *f)
{
    if (f->installed)
        itest_sql_try_each(f->drop, f->n_drop);
    f->installed = false;
    return 0;
}

void
itest_sh_env_cmd(char *buf, size_t size, const char *name, const char *value)
{
    size_t len = strlen(buf);
    if (value == NULL) {
        snprintf(buf + len, size - len, "unset %s; ", name);
        return;
    }
    len += (size_t)snprintf(buf + len, size - len, "export %s='", name);
    if (len + 5 >= size)
        return; /* truncated: the command is useless anyway */
    for (const char *p = value; *p && len + 5 < size; p++) {
        if (*p == '\'') {
            memcpy(buf + len, "'\\''", 4);
            len += 4;
        } else {
            buf[len++] = *p;
        }
    }
    buf[len] = '\0';
    snprintf(buf + len, size - len, "'; ");
}

void
itest_setenv_or_unset(const char *name, const char *value)
{
    if (value != NULL)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

pid_t
itest_spawn_at(const char *file, int line, const char *const *argv,
               const char *const *env, const char *out_path,
               const char *err_path)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        itest_failf_at(file, line, "fork: %s", strerror(errno));
    if (pid > 0)
        return pid;
    /* the child */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(126); /* the test died before the line above */
    const char *o = out_path != NULL ? out_path : "/dev/null";
    const char *e = err_path != NULL ? err_path : "/dev/null";
    int fo = open(o, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int fe = open(e, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int fi = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fo < 0 || fe < 0 || fi < 0 || dup2(fi, 0) < 0 || dup2(fo, 1) < 0 ||
        dup2(fe, 2) < 0)
        _exit(126);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        const char *eq = strchr(env[i], '=');
        if (eq == NULL)
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
        if (eq[1] == '\0')
            unsetenv(name);
        else
            setenv(name, eq + 1, 1);
    }
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int
itest_stop_process(pid_t pid, double timeout_s)
{
    int st = 0;
    if (pid <= 0)
        return -1;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
        return st;
    if (r < 0)
        return -1;
    kill(pid, SIGTERM);
    double until = itest_now() + timeout_s;
    while (itest_now() < until) {
        r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        itest_sleep_ms(20);
    }
    fprintf(stderr,
            "itest: pid %ld did not stop within %.0f s of SIGTERM: "
            "SIGKILL to its process group\n",
            (long)pid, timeout_s);
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    return waitpid(pid, &st, 0) == pid ? st : -1;
}

int
itest_count_lines(const char *path, const char *n1, const char *n2,
                  const char *n3)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0;
    if (f == NULL)
        return 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n')
            break; /* still being written */
        if ((n1 == NULL || strstr(line, n1)) &&
            (n2 == NULL || strstr(line, n2)) &&
            (n3 == NULL || strstr(line, n3)))
            n++;
    }
    free(line);
    fclose(f);
    return n;
}

/* Inodes of the TCP sockets listed in a /proc/net/tcp-style file whose
 * local port is port, appended to ino (up to max); returns the new count. */
static int
tcp_inodes(const char *table, int port, unsigned long *ino, int n, int max)
{
    FILE *f = fopen(table, "r");
    char line[512];
    if (f == NULL)
        return n;
    if (fgets(line, sizeof(line), f) == NULL) { /* the header */
        fclose(f);
        return n;
    }
    while (n < max && fgets(line, sizeof(line), f) != NULL) {
        char local[64], remote[64];
        unsigned st, uid;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*s %63s %63s %x %*s %*s %*s %u %*s %lu", local,
                   remote, &st, &uid, &inode) != 5)
            continue;
        const char *colon = strrchr(local, ':');
        if (colon == NULL)
            continue;
        if ((int)strtol(colon + 1, NULL, 16) == port && inode != 0)
            ino[n++] = inode;
    }
    fclose(f);
    return n;
}

pid_t
itest_tcp_port_owner(pid_t parent, int local_port)
{
    unsigned long ino[16];
    int n = tcp_inodes("/proc/net/tcp", local_port, ino, 0, 16);
    n = tcp_inodes("/proc/net/tcp6", local_port, ino, n, 16);
    if (n == 0)
        return -1;
    pid_t kids[256];
    int k = itest_children(parent, kids, 256);
    for (int i = 0; i < k; i++) {
        char dir[64];
        snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)kids[i]);
        DIR *d = opendir(dir);
        if (d == NULL)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[320], target[128];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            ssize_t len = readlink(path, target, sizeof(target) - 1);
            if (len <= 0)
                continue;
            target[len] = '\0';
            unsigned long sock;
            if (sscanf(target, "socket:[%lu]", &sock) != 1)
                continue;
            for (int j = 0; j < n; j++) {
                if (ino[j] == sock) {
                    closedir(d);
                    return kids[i];
                }
            }
        }
        closedir(d);
    }
    return -1;
}

/* ------------------------------------------------------------ outbox */

PGconn *
itest_pg_connect_at(const char *file, int line)
{
    PGconn *c = PQconnectdb(g_db_url);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s",
                 c != NULL ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        itest_failf_at(file, line, "cannot connect to %s: %s", g_db_url, msg);
    }
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

long
itest_backlog_insert_at(const char *file, int line, const char *consumer_id,
                        const char *prefix, int n, int per_customer)
{
    char sn[16], sk[16];
    snprintf(sn, sizeof(sn), "%d", n);
    snprintf(sk, sizeof(sk), "%d", per_customer);
    /* $1 consumer, $2 name prefix, $3 customers, $4 events per customer.
     * The CTEs are materialised once, so every gen_random_uuid() is one
     * id, used for the row and inside its payload alike. */
    PGresult *r = itest_sql_at(
        file, line,
        "WITH b AS (SELECT now() - interval '1 hour' AS t0), "
        "c AS ("
        "  INSERT INTO customers (customer_id, consumer_id, name, status, "
        "                         created_at, updated_at) "
        "  SELECT gen_random_uuid(), $1::uuid, $2 || '-' || g, 'ACTIVE', "
        "         b.t0 - interval '1 minute', b.t0 - interval '1 minute' "
        "    FROM generate_series(0, $3::int - 1) g, b "
        "  RETURNING customer_id, name), "
        "k AS (SELECT customer_id, name, "
        "             row_number() OVER (ORDER BY customer_id) - 1 AS k "
        "        FROM c), "
        "ev AS ("
        "  SELECT gen_random_uuid() AS event_id, k.customer_id, k.name, "
        "         s.seq, "
        "         CASE WHEN s.seq = 1 THEN 'customer_creation' "
        "              ELSE 'customer_status_change' END AS type, "
        "         CASE WHEN s.seq = 1 THEN 'POST: /customer/data' "
        "              ELSE 'PATCH: /customer/change-status' END AS src, "
        "         b.t0 + ((s.seq - 1) * $3::bigint + k.k) "
        "                * interval '1 millisecond' AS ts "
        "    FROM k, generate_series(1, $4::int) s(seq), b) "
        "INSERT INTO customer_events (event_id, customer_id, consumer_id, "
        "  event_type, source_service, sequence, payload, request_id, "
        "  created_at, publish_status, publish_try_count, "
        "  publish_last_tried_at, publish_failure_reason) "
        "SELECT ev.event_id, ev.customer_id, $1::uuid, ev.type, ev.src, "
        "       ev.seq, "
        "       json_build_object("
        "         'schema_version', '1.0', 'event_id', ev.event_id, "
        "         'event_type', ev.type, 'sequence', ev.seq, "
        "         'consumer_id', $1::uuid, 'customer_id', ev.customer_id, "
        "         'data', CASE WHEN ev.seq = 1 THEN json_build_object("
        "             'customer_id', ev.customer_id, 'name', ev.name, "
        "             'status', 'ACTIVE') "
        "           ELSE json_build_object("
        "             'customer_id', ev.customer_id, "
        "             'previous_status', CASE WHEN ev.seq % 2 = 0 "
        "               THEN 'ACTIVE' ELSE 'INACTIVE' END, "
        "             'status', CASE WHEN ev.seq % 2 = 0 "
        "               THEN 'INACTIVE' ELSE 'ACTIVE' END) END, "
        "         'metadata', json_build_object("
        "           'created_at', fintegrate_ts(ev.ts), "
        "           'source_service', ev.src, "
        "           'request_id', 'itest-backlog')), "
        "       'itest-backlog', ev.ts, 'pending', 1, ev.ts, "
        "       'Broker circuit open' "
        "  FROM ev",
        (const char *const[]){consumer_id, prefix, sn, sk}, 4);
    long rows = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (rows != (long)n * per_customer)
        itest_failf_at(file, line, "backlog: %ld events written, want %ld",
                       rows, (long)n * per_customer);
    return rows;
}

void
itest_assert_redrive_summary_at(const char *file, int line,
                                const struct itest_resp *resp,
                                struct itest_redrive_summary *s)
{
    memset(s, 0, sizeof(*s));
    json_t *d = itest_assert_envelope_at(file, line, resp, 200);
    itest_assert_keys_at(file, line, resp, d, "summary", "failed_events",
                         "failed_events_truncated", NULL);
    json_t *sum = json_object_get(d, "summary");
    itest_assert_keys_at(file, line, resp, sum, "total_pending", "attempted",
                         "succeeded", "failed", "skipped", NULL);
    static const char *const k[] = {"total_pending", "attempted", "succeeded",
                                    "failed", "skipped"};
    long *dst[] = {&s->total_pending, &s->attempted, &s->succeeded, &s->failed,
                   &s->skipped};
    for (int i = 0; i < 5; i++) {
        json_t *v = json_object_get(sum, k[i]);
        itest_expect_at(file, line, resp,
                        json_is_integer(v) && json_integer_value(v) >= 0,
                        "summary.%s must be a non-negative integer", k[i]);
        *dst[i] = (long)json_integer_value(v);
    }
    itest_expect_at(file, line, resp,
                    s->total_pending == s->attempted + s->skipped,
                    "total_pending (%ld) must be attempted (%ld) + skipped "
                    "(%ld)",
                    s->total_pending, s->attempted, s->skipped);
    itest_expect_at(file, line, resp, s->attempted == s->succeeded + s->failed,
                    "attempted (%ld) must be succeeded (%ld) + failed (%ld)",
                    s->attempted, s->succeeded, s->failed);
    s->failed_events = json_object_get(d, "failed_events");
    itest_expect_at(file, line, resp, json_is_array(s->failed_events),
                    "failed_events must be an array");
    size_t want = s->failed > 100 ? 100 : (size_t)s->failed;
    itest_expect_at(file, line, resp, json_array_size(s->failed_events) == want,
                    "failed_events has %zu entries, want %zu",
                    json_array_size(s->failed_events), want);
    json_t *tr = json_object_get(d, "failed_events_truncated");
    s->truncated = json_is_true(tr);
    itest_expect_at(file, line, resp,
                    json_is_boolean(tr) && s->truncated == (s->failed > 100),
                    "failed_events_truncated must say whether more than 100 "
                    "failed");
    size_t i;
    json_t *fe;
    json_array_foreach(s->failed_events, i, fe)
    {
        itest_assert_keys_at(file, line, resp, fe, "event_id", "event_type",
                             "try_count", "failure_reason", NULL);
        const char *why = itest_jstr(fe, "failure_reason");
        itest_expect_at(file, line, resp, why != NULL && why[0] != '\0',
                        "failed_events[%zu].failure_reason must be a sentence",
                        i);
    }
}

long
itest_env_long(const char *name, long dflt, long min)
{
    const char *v = itest_env(name);
    if (v == NULL || *v == '\0')
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return (*end == '\0' && n >= min) ? n : dflt;
}
