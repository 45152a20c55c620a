/*
 * consumer/config.c — the consumer program's configuration table.
 */
#include "config.h"

#include "common/log.h"
#include "common/topology.h"
#include "common/amqp_urls.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_type {
    OPT_NAME,   /* a consumer_name: ^[a-z0-9][a-z0-9_-]{0,62}$ */
    OPT_STRING, /* non-empty text */
    OPT_URL,    /* http:// or https:// */
    OPT_AMQP,   /* amqp:// URLs, comma-separated (common/amqp_urls.h) */
    OPT_INT,    /* integer within [min, max] */
    OPT_BOOL,   /* a flag without value; variable "1"/"0" */
    OPT_LEVEL,  /* debug, info, warn, error */
};

struct opt_row {
    const char *flag; /* "--prefetch" */
    const char *env;  /* "FINTEGRATE_CONSUMER_PREFETCH", or NULL */
    enum opt_type type;
    size_t offset;   /* into struct consumer_config */
    const char *def; /* NULL = required (or derived, see below) */
    long min, max;   /* OPT_INT bounds */
    const char *help;
};

#define ROW(fl, ev, ty, fi, de, lo, hi, he)                                    \
    {                                                                          \
        fl, ev, ty, offsetof(struct consumer_config, fi), de, lo, hi, he       \
    }

static const struct opt_row rows[] = {
    ROW("--name", "FINTEGRATE_CONSUMER_NAME", OPT_NAME, name, NULL, 0, 0,
        "the consumer_name whose queue to read (required)"),
    ROW("--api-key-file", "FINTEGRATE_API_KEY_FILE", OPT_STRING, api_key_file,
        "", 0, 0,
        "a file holding the consumer's API key (else FINTEGRATE_API_KEY)"),
    ROW("--base-url", "FINTEGRATE_BASE_URL", OPT_URL, base_url,
        "http://127.0.0.1:8080", 0, 0, "the Fintegrate API"),
    ROW("--amqp-url", "FINTEGRATE_AMQP_URL", OPT_AMQP, amqp_url,
        "amqp://guest:guest@127.0.0.1:5672", 0, 0,
        "the broker, or its cluster's nodes separated by commas (prefer "
        "the variable: it may hold a password)"),
    ROW("--state-dir", "FINTEGRATE_CONSUMER_STATE_DIR", OPT_STRING, state_dir,
        NULL, 0, 0,
        "processed ids and sequences (default "
        "${XDG_STATE_HOME:-~/.local/state}/fintegrate-consumer/<name>)"),
    ROW("--prefetch", "FINTEGRATE_CONSUMER_PREFETCH", OPT_INT, prefetch, "10",
        1, 1000, "unacknowledged messages the broker may send ahead"),
    ROW("--gap-timeout-ms", "FINTEGRATE_CONSUMER_GAP_TIMEOUT_MS", OPT_INT,
        gap_timeout_ms, "5000", 0, 3600000,
        "how long an event waits for a missing earlier one"),
    ROW("--http-timeout-ms", "FINTEGRATE_CONSUMER_HTTP_TIMEOUT_MS", OPT_INT,
        http_timeout_ms, "5000", 100, 60000,
        "timeout of one confirm-delivery call"),
    ROW("--retain-events", "FINTEGRATE_CONSUMER_RETAIN_EVENTS", OPT_INT,
        retain_events, "100000", 1, 10000000,
        "processed event ids remembered (newest)"),
    ROW("--retain-days", "FINTEGRATE_CONSUMER_RETAIN_DAYS", OPT_INT,
        retain_days, "30", 1, 3650, "... and for at most this many days"),
    ROW("--retain-customers", "FINTEGRATE_CONSUMER_RETAIN_CUSTOMERS", OPT_INT,
        retain_customers, "100000", 1, 10000000,
        "customers whose last sequence is remembered (most recent)"),
    ROW("--raw", "FINTEGRATE_CONSUMER_RAW", OPT_BOOL, raw, "0", 0, 1,
        "also print each message's raw JSON"),
    ROW("--log-level", "FINTEGRATE_LOG_LEVEL", OPT_LEVEL, log_level, "info", 0,
        0, "debug, info, warn or error (log lines go to stderr)"),
};

#define N_ROWS (sizeof rows / sizeof rows[0])

/* Visible ASCII only: anything else could split the HTTP header. */
static bool
is_key_text(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || n > 512)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static const char *
row_label(const struct opt_row *r, bool from_flag)
{
    return from_flag || r->env == NULL ? r->flag : r->env;
}

static int
set_row(struct consumer_config *cfg, const struct opt_row *r, const char *raw,
        bool from_flag, struct strbuf *err)
{
    void *field = (char *)cfg + r->offset;
    const char *label = row_label(r, from_flag);
    char *end;

    switch (r->type) {
    case OPT_NAME:
        if (!is_consumer_name(raw, strlen(raw))) {
            sb_printf(err,
                      "%s must match " CONSUMER_NAME_RULE " (got \"%.64s\")",
                      label, raw);
            return -1;
        }
        break;
    case OPT_URL:
        if (strncmp(raw, "http://", 7) != 0 &&
            strncmp(raw, "https://", 8) != 0) {
            sb_printf(err,
                      "%s must be an http:// or https:// URL (got "
                      "\"%.64s\")",
                      label, raw);
            return -1;
        }
        break;
    case OPT_AMQP: {
        /* the same parse the connection does later: a bad list stops
         * start-up with its position, never its text (a password) */
        struct amqp_nodes nodes;
        int rc = amqp_nodes_parse(&nodes, raw, label, err);
        amqp_nodes_free(&nodes);
        if (rc < 0)
            return -1;
        break;
    }
    case OPT_STRING:
        if (raw[0] == '\0' && r->def != NULL && r->def[0] == '\0')
            return 0; /* optional and empty: not given */
        if (raw[0] == '\0') {
            sb_printf(err, "%s must not be empty", label);
            return -1;
        }
        break;
    case OPT_INT:
    case OPT_BOOL: {
        errno = 0;
        long v = strtol(raw, &end, 10);
        if (errno != 0 || end == raw || *end != '\0' || v < r->min ||
            v > r->max) {
            if (r->type == OPT_BOOL)
                sb_printf(err, "%s must be 0 or 1 (got \"%.64s\")", label, raw);
            else
                sb_printf(err,
                          "%s must be an integer between %ld and %ld "
                          "(got \"%.64s\")",
                          label, r->min, r->max, raw);
            return -1;
        }
        *(long *)field = v;
        return 0;
    }
    case OPT_LEVEL: {
        int lv = log_level_parse(raw);
        if (lv < 0) {
            sb_printf(err,
                      "%s must be one of debug, info, warn, error (got "
                      "\"%.64s\")",
                      label, raw);
            return -1;
        }
        *(long *)field = lv;
        return 0;
    }
    }
    char *copy = strdup(raw);
    if (copy == NULL) {
        sb_printf(err, "out of memory reading %s", label);
        return -1;
    }
    free(*(char **)field);
    *(char **)field = copy;
    return 0;
}

/* Reads the key file: the first line, trailing blanks removed. */
static int
read_key_file(struct consumer_config *cfg, struct strbuf *err)
{
    char buf[1024];
    ssize_t n = 0, r;
    int fd = open(cfg->api_key_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sb_printf(err, "--api-key-file: cannot read %s: %s", cfg->api_key_file,
                  strerror(errno));
        return -1;
    }
    while (n < (ssize_t)sizeof buf - 1 &&
           (r = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
        n += r;
    close(fd);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    size_t len = strlen(buf);
    while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        buf[--len] = '\0';
    cfg->api_key = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    if (cfg->api_key == NULL) {
        sb_puts(err, "out of memory reading the API key");
        return -1;
    }
    return 0;
}

static const char *
env_get(const char *name)
{
    return getenv(name);
}

static const struct opt_row *
find_flag(const char *arg, size_t len)
{
    for (size_t i = 0; i < N_ROWS; i++)
        if (strlen(rows[i].flag) == len && strncmp(rows[i].flag, arg, len) == 0)
            return &rows[i];
    return NULL;
}

int
consumer_config_load(struct consumer_config *cfg, int argc, char *const argv[],
                     consumer_getenv_fn get, struct strbuf *err)
{
    const char *flag_value[N_ROWS] = {0};
    int action = CONSUMER_CONFIG_RUN;

    memset(cfg, 0, sizeof *cfg);
    if (get == NULL)
        get = env_get;

    /* flags: --flag VALUE or --flag=VALUE; --raw takes none */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return CONSUMER_CONFIG_HELP;
        if (strcmp(a, "--check-config") == 0) {
            action = CONSUMER_CONFIG_CHECK;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const struct opt_row *r = find_flag(a, len);
        if (r == NULL) {
            sb_printf(err, "unknown option \"%.64s\" (see --help)", a);
            return -1;
        }
        const char *v;
        if (r->type == OPT_BOOL)
            v = eq ? eq + 1 : "1";
        else if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            sb_printf(err, "%s needs a value", r->flag);
            return -1;
        }
        flag_value[r - rows] = v;
    }

    for (size_t i = 0; i < N_ROWS; i++) {
        const struct opt_row *r = &rows[i];
        const char *v = flag_value[i];
        bool from_flag = v != NULL;
        if (v == NULL && r->env != NULL)
            v = get(r->env);
        if (v == NULL)
            v = r->def;
        if (v == NULL)
            continue; /* required or derived: checked below */
        if (set_row(cfg, r, v, from_flag, err) < 0)
            return -1;
    }

    if (cfg->name == NULL) {
        sb_puts(err, "FINTEGRATE_CONSUMER_NAME (or --name) is required: the "
                     "consumer_name whose queue to read");
        return -1;
    }
    if (cfg->api_key_file != NULL) {
        if (read_key_file(cfg, err) < 0)
            return -1;
    } else {
        const char *k = get("FINTEGRATE_API_KEY");
        if (k == NULL || k[0] == '\0') {
            sb_puts(err, "FINTEGRATE_API_KEY (or --api-key-file) is required: "
                         "the consumer's API key");
            return -1;
        }
        cfg->api_key = strdup(k);
        if (cfg->api_key == NULL) {
            sb_puts(err, "out of memory reading the API key");
            return -1;
        }
    }
    if (!is_key_text(cfg->api_key)) {
        /* says nothing about the key but its length */
        sb_printf(err,
                  "%s must be 20-512 visible ASCII characters (got %zu "
                  "characters)",
                  cfg->api_key_file ? "the API key file" : "FINTEGRATE_API_KEY",
                  strlen(cfg->api_key));
        return -1;
    }

    if (cfg->state_dir == NULL) {
        struct strbuf sb = STRBUF_INIT;
        const char *xdg = get("XDG_STATE_HOME");
        const char *home = get("HOME");
        if (xdg != NULL && xdg[0] == '/')
            sb_printf(&sb, "%s/fintegrate-consumer/%s", xdg, cfg->name);
        else if (home != NULL && home[0] == '/')
            sb_printf(&sb, "%s/.local/state/fintegrate-consumer/%s", home,
                      cfg->name);
        else {
            sb_puts(err, "FINTEGRATE_CONSUMER_STATE_DIR (or --state-dir) is "
                         "required when HOME is not set");
            return -1;
        }
        cfg->state_dir = sb_steal(&sb);
        if (cfg->state_dir == NULL) {
            sb_puts(err, "out of memory");
            return -1;
        }
    }

    struct strbuf q = STRBUF_INIT;
    mq_queue_name(&q, cfg->name, false);
    cfg->queue = sb_steal(&q);
    if (cfg->queue == NULL) {
        sb_puts(err, "out of memory");
        return -1;
    }
    return action;
}

void
consumer_config_free(struct consumer_config *cfg)
{
    if (cfg->api_key != NULL)
        explicit_bzero(cfg->api_key, strlen(cfg->api_key));
    if (cfg->amqp_url != NULL)
        explicit_bzero(cfg->amqp_url, strlen(cfg->amqp_url));
    free(cfg->name);
    free(cfg->api_key);
    free(cfg->api_key_file);
    free(cfg->base_url);
    free(cfg->amqp_url);
    free(cfg->state_dir);
    free(cfg->queue);
    memset(cfg, 0, sizeof *cfg);
}

void
consumer_config_usage(FILE *out)
{
    fprintf(out,
            "usage: fintegrate-consumer [options]\n"
            "\n"
            "Reads a Fintegrate consumer's queue (customer_notification_"
            "<name>), prints\neach event on one line, and confirms it with "
            "POST /events/confirm-delivery.\n"
            "Idempotent (processed ids persist in the state directory), "
            "ordered per\ncustomer by sequence, poison to the DLQ at once, "
            "transient trouble requeued.\n"
            "\n"
            "The API key comes from FINTEGRATE_API_KEY or --api-key-file.\n"
            "\n");
    for (size_t i = 0; i < N_ROWS; i++) {
        const struct opt_row *r = &rows[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s", r->flag,
                 r->type == OPT_BOOL ? "" : " V");
        fprintf(out, "  %-22s %s\n", left, r->help);
        bool has_def = r->def != NULL && r->def[0] != '\0';
        if (r->env != NULL && has_def)
            fprintf(out, "  %-22s $%s, default %s\n", "", r->env, r->def);
        else if (r->env != NULL)
            fprintf(out, "  %-22s $%s\n", "", r->env);
    }
    fprintf(out,
            "  %-22s validate the configuration, print it (no secrets), "
            "exit\n"
            "  %-22s this text\n"
            "\n"
            "Exit status: 0 stopped by SIGINT/SIGTERM; 1 bad configuration "
            "or state\ndirectory; 3 the service refused the API key, or the "
            "state could not be written.\n",
            "--check-config", "--help");
}

void
consumer_config_print(const struct consumer_config *cfg, FILE *out)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    fprintf(out,
            "name              %s\n"
            "queue             %s\n"
            "base_url          %s\n"
            "amqp_url          (set; not shown, it may hold a password)\n"
            "api_key           (set, %zu characters; never shown)\n"
            "state_dir         %s\n"
            "prefetch          %ld\n"
            "gap_timeout_ms    %ld\n"
            "http_timeout_ms   %ld\n"
            "retain_events     %ld\n"
            "retain_days       %ld\n"
            "retain_customers  %ld\n"
            "raw               %s\n"
            "log_level         %s\n",
            cfg->name, cfg->queue, cfg->base_url, strlen(cfg->api_key),
            cfg->state_dir, cfg->prefetch, cfg->gap_timeout_ms,
            cfg->http_timeout_ms, cfg->retain_events, cfg->retain_days,
            cfg->retain_customers, cfg->raw ? "yes" : "no",
            levels[cfg->log_level]);
}
