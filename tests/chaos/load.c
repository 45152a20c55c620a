/*
 * tests/chaos/load.c — `fintegrate-chaos load`: steady, open-loop write
 * load through one or more app nodes, every HTTP attempt logged
 * (reqlog.h).
 *
 * Logical writes start on a fixed schedule (write i at t0 + i/rate), not
 * when an earlier one finishes, so a slow or failing node does not slow the
 * offered load down; at most --connections attempts are in flight (curl
 * multi), and a write that finds them all busy starts late (the summary
 * says how late).  New writes go round-robin over the --url nodes; a
 * retry goes to the node after the one its previous attempt used.  About half
 * of the writes create a customer (POST /customer/data) with a random
 * consumer's key; the others change the status (PATCH /customer/change-status)
 * of a customer created by this run, with its owner's key, asking for the
 * status it does not have.  A customer has at most one write in flight, so the
 * load itself causes no 409 unless an earlier outcome was unknown.
 *
 * --retry: every write carries an Idempotency-Key (a fresh UUID per logical
 * write); 502, 503, 504 and no answer are retried with the same key and
 * body after 100 ms doubling to 2 s, until a 2xx or 4xx or 60 s after the
 * first attempt.
 *
 * SIGINT/SIGTERM: no new attempt starts (pending retries are abandoned),
 * the ones in flight finish, the log is written, exit 0.
 *
 * The API keys are only ever put into request headers: never printed.
 */
#include "commands.h"
#include "load_plan.h"
#include "reqlog.h"
#include "util.h"

#include "common/clock.h"
#include "common/strbuf.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define DEFAULT_CONNECTIONS 64
#define REQUEST_TIMEOUT_MS 30000L
#define RESPONSE_MAX_BYTES ((size_t)1024 * 1024)
#define POLL_MAX_MS 100
#define FLUSH_EVERY_US 1000000
#define LATE_START_MS 100
#define PICK_TRIES 8
#define UUID_TEXT 37

static volatile sig_atomic_t g_stop;

static void
on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

struct consumer {
    char *name;       /* owned */
    char *key_header; /* owned: "X-API-Key: <key>", wiped before free */
};

struct customer {
    char id[UUID_TEXT];
    size_t consumer;
    enum load_status status;
    bool busy; /* a write to it is in flight or waiting for a retry */
};

/* A logical write: one or more attempts with the same body (and key). */
struct write {
    int64_t logical_id;
    enum reqlog_kind kind;
    size_t consumer;
    size_t customer; /* REQLOG_STATUS: index into customers */
    enum load_status target;
    char *body; /* owned */
    char idem[UUID_TEXT];
    int attempts;
    int last_node; /* the node of the latest attempt */
    int64_t first_start_ms;
    int64_t due_us; /* a retry waiting: when it may start */
};

/* One attempt in flight. */
struct xfer {
    struct xfer *prev, *next; /* the list of attempts in flight */
    CURL *easy;
    struct curl_slist *headers;
    struct strbuf resp;
    bool resp_cut;
    struct write *w;
    int node;
    int attempt;
    int64_t start_ms;
};

struct load_stats {
    long attempts, n2xx, n4xx, n5xx, none, other;
    long logical, retries, gave_up, abandoned;
    long late_starts;
    int64_t max_lag_ms;
};

struct load {
    /* options */
    struct vec urls; /* const char * (borrowed from argv) */
    const char *keys_file;
    const char *out_file;
    double rate;
    double seconds;
    long connections;
    bool retry;
    uint64_t rng;

    /* state */
    struct vec consumers; /* struct consumer */
    struct vec customers; /* struct customer */
    struct vec pending;   /* struct write *: retries waiting for their time */
    struct xfer *xfers;   /* attempts in flight (owned) */
    CURLM *multi;
    FILE *out;
    struct strbuf line;
    long inflight;
    size_t next_node;
    int64_t next_logical;
    bool failed; /* a runtime error: stop and exit CHAOS_EXIT_ERROR */
    struct load_stats st;
};

/* ------------------------------------------------------------ options */

static void
usage(FILE *to)
{
    fprintf(to,
            "usage: fintegrate-chaos load --url URL [--url URL2 ...] "
            "--keys FILE\n"
            "           --rate N --seconds S --out FILE [--connections C] "
            "[--retry]\n"
            "           [--seed X]\n"
            "\n"
            "  --url URL        an app node's base URL (repeat: round-robin)\n"
            "  --keys FILE      lines \"<consumer_name> <api_key>\"\n"
            "  --rate N         logical writes per second, in total\n"
            "  --seconds S      how long to send\n"
            "  --out FILE       the request log, one line per attempt:\n"
            "                   start_ms end_ms node_index method kind status "
            "attempt\n"
            "                   logical_id customer_id\n"
            "  --connections C  at most C attempts in flight (default %d)\n"
            "  --retry          Idempotency-Key on every write; retry 502, "
            "503, 504\n"
            "                   and no answer with the same key and body\n"
            "  --seed X         random seed (default: time and pid)\n",
            DEFAULT_CONNECTIONS);
}

static int
parse_options(struct load *L, int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"keys", required_argument, NULL, 'k'},
        {"rate", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"connections", required_argument, NULL, 'c'},
        {"retry", no_argument, NULL, 'R'},
        {"seed", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t v;
    int c;

    L->connections = DEFAULT_CONNECTIONS;
    L->rng = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            if (strncmp(optarg, "http://", 7) != 0 &&
                strncmp(optarg, "https://", 8) != 0) {
                fprintf(stderr, "load: --url must start with http:// or "
                                "https://\n");
                return -1;
            }
            if (vec_push(&L->urls, &optarg) < 0)
                return -1;
            break;
        case 'k':
            L->keys_file = optarg;
            break;
        case 'r':
            if (!chaos_parse_double(optarg, &L->rate) || L->rate <= 0 ||
                L->rate > 1e6) {
                fprintf(stderr, "load: --rate must be a number > 0\n");
                return -1;
            }
            break;
        case 's':
            if (!chaos_parse_double(optarg, &L->seconds) || L->seconds <= 0 ||
                L->seconds > 1e7) {
                fprintf(stderr, "load: --seconds must be a number > 0\n");
                return -1;
            }
            break;
        case 'o':
            L->out_file = optarg;
            break;
        case 'c':
            if (!chaos_parse_i64(optarg, &v) || v < 1 || v > 100000) {
                fprintf(stderr, "load: --connections must be an integer "
                                "between 1 and 100000\n");
                return -1;
            }
            L->connections = (long)v;
            break;
        case 'R':
            L->retry = true;
            break;
        case 'S':
            if (!chaos_parse_i64(optarg, &v)) {
                fprintf(stderr, "load: --seed must be an integer\n");
                return -1;
            }
            L->rng = (uint64_t)v;
            break;
        case 'h':
            usage(stdout);
            exit(CHAOS_EXIT_OK);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "load: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (L->urls.len == 0 || L->keys_file == NULL || L->out_file == NULL ||
        L->rate <= 0 || L->seconds <= 0) {
        fprintf(stderr, "load: --url, --keys, --rate, --seconds and --out "
                        "are required\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- keys */

static void
consumer_free(struct consumer *c)
{
    free(c->name);
    if (c->key_header != NULL) {
        explicit_bzero(c->key_header, strlen(c->key_header));
        free(c->key_header);
    }
}

static int
read_keys(struct load *L)
{
    FILE *f = fopen(L->keys_file, "r");
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "load: cannot open --keys %s: %m\n", L->keys_file);
        return -1;
    }
    while (getline(&line, &cap, f) != -1) {
        char *name, *key;
        line_no++;
        int r = load_parse_key_line(line, &name, &key);
        if (r == 0)
            continue;
        if (r < 0) {
            /* the line holds a key: name the line, never print it */
            fprintf(stderr,
                    "load: %s line %ld: expected \"<consumer_name> "
                    "<api_key>\"\n",
                    L->keys_file, line_no);
            goto out;
        }
        struct strbuf hdr = STRBUF_INIT;
        sb_printf(&hdr, "X-API-Key: %s", key);
        struct consumer c = {strdup(name), sb_steal(&hdr)};
        if (c.name == NULL || c.key_header == NULL ||
            vec_push(&L->consumers, &c) < 0) {
            consumer_free(&c);
            fprintf(stderr, "load: out of memory\n");
            goto out;
        }
    }
    if (L->consumers.len == 0) {
        fprintf(stderr, "load: no consumer in %s\n", L->keys_file);
        goto out;
    }
    rc = 0;
out:
    if (line != NULL) {
        explicit_bzero(line, cap);
        free(line);
    }
    fclose(f);
    return rc;
}

/* -------------------------------------------------------------- writes */

static void
write_free(struct write *w)
{
    if (w == NULL)
        return;
    free(w->body);
    free(w);
}

static struct customer *
customer_at(const struct load *L, size_t i)
{
    return vec_at(&L->customers, i);
}

static const struct consumer *
consumer_at(const struct load *L, size_t i)
{
    return vec_at(&L->consumers, i);
}

/* A customer of this run with no write in flight, or SIZE_MAX. */
static size_t
pick_customer(struct load *L)
{
    if (L->customers.len == 0)
        return SIZE_MAX;
    for (int i = 0; i < PICK_TRIES; i++) {
        size_t k = (size_t)load_rand_below(&L->rng, L->customers.len);
        if (!customer_at(L, k)->busy)
            return k;
    }
    return SIZE_MAX;
}

static char *
json_body(json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return s;
}

/* The next logical write (owned by the caller), or NULL when out of
 * memory. */
static struct write *
next_write(struct load *L)
{
    struct write *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->logical_id = ++L->next_logical;
    w->customer = SIZE_MAX;

    if (load_rand_below(&L->rng, 2) == 1)
        w->customer = pick_customer(L);
    if (w->customer != SIZE_MAX) {
        struct customer *cu = customer_at(L, w->customer);
        w->kind = REQLOG_STATUS;
        w->consumer = cu->consumer;
        w->target = load_status_target(cu->status, load_rand(&L->rng));
        w->body = json_body(json_pack("{s:s, s:s}", "customer_id", cu->id,
                                      "status", load_status_name(w->target)));
        cu->busy = true;
    } else {
        w->kind = REQLOG_CREATE;
        w->consumer = (size_t)load_rand_below(&L->rng, L->consumers.len);
        w->target =
            load_rand_below(&L->rng, 4) == 0 ? LOAD_INACTIVE : LOAD_ACTIVE;
        struct strbuf name = STRBUF_INIT;
        sb_printf(&name, "chaos %s %lld", consumer_at(L, w->consumer)->name,
                  (long long)w->logical_id);
        w->body =
            name.oom
                ? NULL
                : json_body(json_pack("{s:s, s:s}", "name", sb_str(&name),
                                      "status", load_status_name(w->target)));
        sb_free(&name);
    }
    if (L->retry) {
        uuid_t u;
        uuid_generate_random(u);
        uuid_unparse_lower(u, w->idem);
    }
    if (w->body == NULL) {
        if (w->kind == REQLOG_STATUS)
            customer_at(L, w->customer)->busy = false;
        write_free(w);
        return NULL;
    }
    return w;
}

/* The write is finished (answered for good, given up or abandoned). */
static void
write_done(struct load *L, struct write *w, long http)
{
    if (w->kind == REQLOG_STATUS) {
        struct customer *cu = customer_at(L, w->customer);
        cu->busy = false;
        cu->status = load_status_after(w->target, http);
    }
    write_free(w);
}

/* ------------------------------------------------------------ attempts */

static size_t
on_body(char *data, size_t size, size_t n, void *userp)
{
    struct xfer *x = userp;
    size_t len = size * n;
    if (x->resp.len + len > RESPONSE_MAX_BYTES)
        x->resp_cut = true; /* keep reading, stop keeping */
    else
        sb_append(&x->resp, data, len);
    return len;
}

static void
xfer_unlink(struct load *L, struct xfer *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        L->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void
xfer_free(struct xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    sb_free(&x->resp);
    free(x);
}

static bool
add_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *n = curl_slist_append(*list, h);
    if (n == NULL)
        return false;
    *list = n;
    return true;
}

/* Starts an attempt of w.  0, or -1 (out of memory, curl refused). */
static int
start_attempt(struct load *L, struct write *w)
{
    struct xfer *x = calloc(1, sizeof *x);
    struct strbuf url = STRBUF_INIT, idem = STRBUF_INIT;
    int rc = -1;

    if (x == NULL)
        goto out;
    x->w = w;
    /* new writes take turns; a retry goes to the node after its last one,
     * so that retries never keep hitting the node that is down */
    if (w->attempts == 0)
        x->node = (int)(L->next_node++ % L->urls.len);
    else
        x->node = (int)(((size_t)w->last_node + 1) % L->urls.len);
    w->last_node = x->node;
    const char *base = *(const char **)vec_at(&L->urls, (size_t)x->node);
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    sb_append(&url, base, blen);
    sb_puts(&url, w->kind == REQLOG_CREATE ? "/customer/data"
                                           : "/customer/change-status");
    if (L->retry)
        sb_printf(&idem, "Idempotency-Key: %s", w->idem);
    if (url.oom || idem.oom)
        goto out;

    if (!add_header(&x->headers, "Content-Type: application/json") ||
        !add_header(&x->headers, "Accept: application/json") ||
        !add_header(&x->headers, "Expect:") ||
        !add_header(&x->headers, consumer_at(L, w->consumer)->key_header) ||
        (L->retry && !add_header(&x->headers, sb_str(&idem))))
        goto out;

    x->easy = curl_easy_init();
    if (x->easy == NULL)
        goto out;
    CURL *e = x->easy;
    if (curl_easy_setopt(e, CURLOPT_URL, sb_str(&url)) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, w->body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(w->body)) !=
            CURLE_OK ||
        (w->kind == REQLOG_STATUS &&
         curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PATCH") != CURLE_OK) ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS) !=
            CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK)
        goto out;

    w->attempts++;
    x->attempt = w->attempts;
    x->start_ms = wall_ms();
    if (w->attempts == 1)
        w->first_start_ms = x->start_ms;
    if (curl_multi_add_handle(L->multi, e) != CURLM_OK)
        goto out;
    L->inflight++;
    x->next = L->xfers;
    if (L->xfers != NULL)
        L->xfers->prev = x;
    L->xfers = x;
    x = NULL; /* owned by the list now */
    rc = 0;
out:
    xfer_free(x);
    sb_free(&url);
    sb_free(&idem);
    return rc;
}

/* customer_id of a 2xx answer, lower-cased into id[], or false. */
static bool
answer_customer(const struct xfer *x, char id[UUID_TEXT],
                enum load_status *status)
{
    json_error_t err;
    bool ok = false;
    if (x->resp_cut || x->resp.len == 0)
        return false;
    json_t *root = json_loadb(x->resp.buf, x->resp.len, 0, &err);
    json_t *data = json_object_get(root, "data");
    const char *cid = json_string_value(json_object_get(data, "customer_id"));
    if (cid != NULL && chaos_is_uuid(cid)) {
        for (size_t i = 0; i < UUID_TEXT; i++)
            id[i] =
                (char)(cid[i] >= 'A' && cid[i] <= 'F' ? cid[i] + 32 : cid[i]);
        *status = load_status_parse(
            json_string_value(json_object_get(data, "status")));
        ok = true;
    }
    json_decref(root);
    return ok;
}

static void
log_attempt(struct load *L, const struct xfer *x, long http, int64_t end_ms,
            const char *customer_id)
{
    struct reqlog_attempt a = {
        .start_ms = x->start_ms,
        .end_ms = end_ms,
        .node = x->node,
        .method = x->w->kind == REQLOG_CREATE ? "POST" : "PATCH",
        .kind = x->w->kind,
        .status = (int)http,
        .attempt = x->attempt,
        .logical_id = x->w->logical_id,
        .customer_id = customer_id,
    };
    sb_reset(&L->line);
    reqlog_format(&a, &L->line);
    if (L->line.oom || fputs(sb_str(&L->line), L->out) == EOF)
        L->failed = true;
}

static void
count_status(struct load_stats *st, long http)
{
    st->attempts++;
    if (http == 0)
        st->none++;
    else if (http >= 200 && http <= 299)
        st->n2xx++;
    else if (http >= 400 && http <= 499)
        st->n4xx++;
    else if (http >= 500 && http <= 599)
        st->n5xx++;
    else
        st->other++;
}

/* An attempt ended: log it, then settle or retry its write. */
static void
finish_attempt(struct load *L, CURL *easy, CURLcode result)
{
    char *priv = NULL;
    long http = 0;
    int64_t end_ms = wall_ms();

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    struct xfer *x = (struct xfer *)(void *)priv;
    curl_multi_remove_handle(L->multi, easy);
    xfer_unlink(L, x);
    L->inflight--;
    if (result == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &http);
    if (http < 100 || http > 999)
        http = 0;

    struct write *w = x->w;
    char cid[UUID_TEXT] = "-";
    enum load_status created = w->target;
    bool is_2xx = http >= 200 && http <= 299;
    if (w->kind == REQLOG_STATUS)
        memcpy(cid, customer_at(L, w->customer)->id, UUID_TEXT);
    else if (is_2xx && !answer_customer(x, cid, &created))
        memcpy(cid, "-", 2);
    log_attempt(L, x, http, end_ms, cid);
    count_status(&L->st, http);

    if (w->kind == REQLOG_CREATE && is_2xx && cid[0] != '-') {
        struct customer cu = {
            .consumer = w->consumer,
            .status = created == LOAD_STATUS_UNKNOWN ? w->target : created};
        memcpy(cu.id, cid, UUID_TEXT);
        if (vec_push(&L->customers, &cu) < 0)
            L->failed = true;
    }

    if (L->retry && load_is_retryable(http)) {
        long backoff = load_backoff_ms(w->attempts);
        if (g_stop || L->failed) {
            L->st.abandoned++;
            write_done(L, w, http);
        } else if (end_ms + backoff - w->first_start_ms > LOAD_GIVE_UP_MS) {
            L->st.gave_up++;
            write_done(L, w, http);
        } else {
            w->due_us = mono_us() + (int64_t)backoff * 1000;
            if (vec_push(&L->pending, &w) < 0) {
                L->failed = true;
                write_done(L, w, http);
            }
        }
    } else {
        write_done(L, w, http);
    }
    x->w = NULL;
    xfer_free(x);
}

/* ---------------------------------------------------------------- loop */

static int64_t
due_us(const struct load *L, int64_t t0, int64_t i)
{
    return t0 + (int64_t)llround((double)i * 1e6 / L->rate);
}

static void
start_due(struct load *L, int64_t t0, int64_t total, int64_t *next)
{
    int64_t now = mono_us();

    /* retries whose backoff is over come first */
    for (size_t i = 0; i < L->pending.len && L->inflight < L->connections;) {
        struct write **slot = vec_at(&L->pending, i);
        struct write *w = *slot;
        if (w->due_us > now) {
            i++;
            continue;
        }
        *slot = *(struct write **)vec_at(&L->pending, L->pending.len - 1);
        L->pending.len--;
        L->st.retries++;
        if (start_attempt(L, w) < 0) {
            L->failed = true;
            write_done(L, w, 0);
            return;
        }
    }

    while (*next < total && L->inflight < L->connections) {
        int64_t due = due_us(L, t0, *next);
        if (due > now)
            break;
        int64_t lag_ms = (now - due) / 1000;
        if (lag_ms > L->st.max_lag_ms)
            L->st.max_lag_ms = lag_ms;
        if (lag_ms > LATE_START_MS)
            L->st.late_starts++;
        struct write *w = next_write(L);
        if (w == NULL || start_attempt(L, w) < 0) {
            if (w != NULL)
                write_done(L, w, 0);
            L->failed = true;
            return;
        }
        L->st.logical++;
        (*next)++;
    }
}

/* How long the loop may sleep: until the next write or retry is due. */
static int
wait_ms(const struct load *L, int64_t t0, int64_t total, int64_t next)
{
    int64_t now = mono_us();
    int64_t until = now + (int64_t)POLL_MAX_MS * 1000;
    if (L->inflight < L->connections) {
        if (next < total) {
            int64_t d = due_us(L, t0, next);
            if (d < until)
                until = d;
        }
        for (size_t i = 0; i < L->pending.len; i++) {
            const struct write *w = *(struct write **)vec_at(&L->pending, i);
            if (w->due_us < until)
                until = w->due_us;
        }
    }
    if (until <= now)
        return 0;
    return (int)((until - now + 999) / 1000);
}

static void
abandon_pending(struct load *L)
{
    for (size_t i = 0; i < L->pending.len; i++) {
        struct write *w = *(struct write **)vec_at(&L->pending, i);
        L->st.abandoned++;
        write_done(L, w, 0);
    }
    L->pending.len = 0;
}

static void
drain_messages(struct load *L)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(L->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            finish_attempt(L, msg->easy_handle, msg->data.result);
}

static int
run(struct load *L)
{
    int64_t total = (int64_t)llround(L->rate * L->seconds);
    int64_t next = 0;
    int64_t t0 = mono_us();
    int64_t last_flush = t0;
    int running = 0;

    for (;;) {
        bool stopping = g_stop || L->failed;
        if (!stopping)
            start_due(L, t0, total, &next);
        else if (L->pending.len > 0)
            abandon_pending(L);
        if (L->inflight == 0 &&
            (stopping || (next >= total && L->pending.len == 0)))
            break;

        int ms = stopping ? POLL_MAX_MS : wait_ms(L, t0, total, next);
        if (curl_multi_poll(L->multi, NULL, 0, ms, NULL) != CURLM_OK ||
            curl_multi_perform(L->multi, &running) != CURLM_OK) {
            fprintf(stderr, "load: curl multi failed\n");
            L->failed = true;
            /* the transfers in flight cannot be driven any more */
            break;
        }
        drain_messages(L);

        int64_t now = mono_us();
        if (now - last_flush >= FLUSH_EVERY_US) {
            if (fflush(L->out) == EOF)
                L->failed = true;
            last_flush = now;
        }
    }
    abandon_pending(L);
    return L->failed ? -1 : 0;
}

/* Attempts still in flight after a curl failure: dropped, not logged. */
static void
release_inflight(struct load *L)
{
    struct xfer *x = L->xfers;
    L->xfers = NULL;
    while (x != NULL) {
        struct xfer *next = x->next;
        curl_multi_remove_handle(L->multi, x->easy);
        L->inflight--;
        write_done(L, x->w, 0);
        xfer_free(x);
        x = next;
    }
}

static void
print_summary(const struct load *L, double secs)
{
    const struct load_stats *s = &L->st;
    fprintf(stderr,
            "fintegrate-chaos load: %ld attempts (2xx %ld, 4xx %ld, 5xx %ld, "
            "no answer %ld, other %ld) for %ld logical writes in %.1f s "
            "over %zu node(s); retries %ld, gave up %ld, abandoned at stop "
            "%ld; starts more than %d ms late %ld (max %lld ms)%s\n",
            s->attempts, s->n2xx, s->n4xx, s->n5xx, s->none, s->other,
            s->logical, secs, L->urls.len, s->retries, s->gave_up, s->abandoned,
            LATE_START_MS, s->late_starts, (long long)s->max_lag_ms,
            g_stop ? " (stopped by a signal)" : "");
}

int
load_main(int argc, char **argv)
{
    struct load L = {
        .urls = VEC_INIT(const char *),
        .consumers = VEC_INIT(struct consumer),
        .customers = VEC_INIT(struct customer),
        .pending = VEC_INIT(struct write *),
    };
    struct sigaction sa;
    int rc = CHAOS_EXIT_USAGE;
    bool curl_ready = false;
    int64_t t_start = mono_us();

    if (parse_options(&L, argc, argv) < 0 || read_keys(&L) < 0)
        goto out;

    rc = CHAOS_EXIT_ERROR;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "load: curl_global_init failed\n");
        goto out;
    }
    curl_ready = true;
    L.multi = curl_multi_init();
    if (L.multi == NULL)
        goto out;
    curl_multi_setopt(L.multi, CURLMOPT_MAXCONNECTS, L.connections);

    L.out = fopen(L.out_file, "w");
    if (L.out == NULL) {
        fprintf(stderr, "load: cannot write --out %s: %m\n", L.out_file);
        goto out;
    }
    fprintf(L.out,
            "# fintegrate-chaos load rate=%g seconds=%g nodes=%zu "
            "consumers=%zu connections=%ld retry=%d\n"
            "# start_ms end_ms node_index method kind status attempt "
            "logical_id customer_id\n",
            L.rate, L.seconds, L.urls.len, L.consumers.len, L.connections,
            L.retry ? 1 : 0);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    t_start = mono_us();
    if (run(&L) < 0) {
        fprintf(stderr, "load: stopped early on an error (out of memory, "
                        "curl or the output file)\n");
        goto out;
    }
    rc = CHAOS_EXIT_OK;
out:
    release_inflight(&L);
    if (L.out != NULL) {
        if (fclose(L.out) == EOF) {
            fprintf(stderr, "load: writing %s failed: %m\n", L.out_file);
            rc = CHAOS_EXIT_ERROR;
        }
        print_summary(&L, (double)(mono_us() - t_start) / 1e6);
    }
    if (L.multi != NULL)
        curl_multi_cleanup(L.multi);
    if (curl_ready)
        curl_global_cleanup();
    for (size_t i = 0; i < L.consumers.len; i++)
        consumer_free(vec_at(&L.consumers, i));
    vec_free(&L.consumers);
    vec_free(&L.customers);
    vec_free(&L.pending);
    vec_free(&L.urls);
    sb_free(&L.line);
    return rc;
}
