/*
 * consumer/main.c — fintegrate-consumer, the bank side of Fintegrate
 * (docs/API.md §9.3): reads a consumer's queue, prints each event, and
 * confirms it with POST /events/confirm-delivery.
 *
 * This file starts and stops it: the configuration (config.h), the
 * identity check of the key, the state directory (state.h), the signals.
 * The loop is loop.h, what happens to each delivery delivery.h, the lines
 * it prints output.h.  SIGINT/SIGTERM: the message in hand is finished (a
 * backoff is cut short and the message requeued), held ones go back to the
 * queue, exit 0; a fatal error (a key refused later) exits 3.
 */
#include "app.h"
#include "delivery.h"
#include "loop.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/version.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
on_signal(int sig)
{
    (void)sig;
    app_stop_requested = 1;
}

/*
 * Before consuming anything: is the key accepted, and is it this
 * consumer's?  A key of another consumer would make every confirmation a
 * 404 (acknowledged, never confirmed); a refused one would requeue every
 * message.  An API that cannot be reached now is no reason not to start:
 * confirmations are retried.
 */
static int
check_identity(struct app *a)
{
    struct strbuf why = STRBUF_INIT;
    char owner[64];
    long http = 0;
    int rc = 0;

    switch (confirm_whoami(a->confirm, owner, &http, &why)) {
    case CONFIRM_OK:
        if (strcmp(owner, a->cfg.name) != 0) {
            fprintf(stderr,
                    "fintegrate-consumer: the API key belongs to consumer "
                    "\"%s\", not \"%s\": use that consumer's key\n",
                    owner, a->cfg.name);
            rc = -1;
        }
        break;
    case CONFIRM_AUTH:
    case CONFIRM_REFUSED:
        fprintf(stderr,
                "fintegrate-consumer: the service refuses the API key (HTTP "
                "%ld: %s)\n",
                http, sb_str(&why));
        rc = -1;
        break;
    case CONFIRM_RETRY:
    default:
        if (http != 0)
            log_warn("cannot check the API key now (HTTP %ld: %s); starting "
                     "anyway: confirmations are retried",
                     http, sb_str(&why));
        else
            log_warn("cannot check the API key now (%s); starting anyway: "
                     "confirmations are retried",
                     sb_str(&why));
        break;
    }
    sb_free(&why);
    return rc;
}

static int
install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked call returns */
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

int
main(int argc, char **argv)
{
    struct app a;
    struct strbuf err = STRBUF_INIT;
    int rc = 1;
    bool curl_ready = false;

    memset(&a, 0, sizeof a);
    int action = consumer_config_load(&a.cfg, argc, argv, NULL, &err);
    if (action < 0) {
        fprintf(stderr, "fintegrate-consumer: %s\n", sb_str(&err));
        goto out;
    }
    if (action == CONSUMER_CONFIG_HELP) {
        consumer_config_usage(stdout);
        rc = 0;
        goto out;
    }
    if (log_open(NULL, (enum log_level)a.cfg.log_level) < 0)
        goto out;
    if (action == CONSUMER_CONFIG_CHECK) {
        consumer_config_print(&a.cfg, stdout);
        rc = 0;
        goto out;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (install_signals() < 0) {
        fprintf(stderr, "fintegrate-consumer: cannot install signal "
                        "handlers\n");
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "fintegrate-consumer: libcurl did not initialise\n");
        goto out;
    }
    curl_ready = true;

    a.reorder = reorder_new(a.cfg.gap_timeout_ms);
    a.confirm = confirm_client_new(a.cfg.base_url, a.cfg.api_key,
                                   a.cfg.http_timeout_ms);
    if (a.reorder == NULL || a.confirm == NULL) {
        fprintf(stderr, "fintegrate-consumer: out of memory\n");
        goto out;
    }
    struct strbuf name = STRBUF_INIT;
    sb_printf(&name, "fintegrate-consumer %s", a.cfg.name);
    int init = amqpc_init(&a.mq, a.cfg.amqp_url, a.cfg.queue, sb_str(&name),
                          (int)a.cfg.prefetch, &err);
    sb_free(&name);
    if (init < 0) {
        fprintf(stderr, "fintegrate-consumer: %s\n", sb_str(&err));
        goto out;
    }
    if (check_identity(&a) < 0)
        goto out;
    struct state_options so = {
        .max_events = a.cfg.retain_events,
        .max_age_days = a.cfg.retain_days,
        .max_customers = a.cfg.retain_customers,
        .fsync = true,
    };
    if (state_open(&a.state, a.cfg.state_dir, &so, wall_ms(), &err) < 0) {
        fprintf(stderr, "fintegrate-consumer: %s\n", sb_str(&err));
        goto out;
    }

    log_info("fintegrate-consumer %s: consumer %s, API %s, state %s (%zu "
             "processed id(s), %zu customer(s) remembered)",
             FINTEGRATE_VERSION, a.cfg.name, a.cfg.base_url, a.cfg.state_dir,
             state_event_count(a.state), state_customer_count(a.state));
    loop_run(&a);
    loop_shut_down(&a);
    rc = a.exit_code;
out:
    amqpc_free(&a.mq);
    reorder_free(a.reorder, delivery_free);
    confirm_client_free(a.confirm);
    state_close(a.state);
    consumer_config_free(&a.cfg);
    if (curl_ready)
        curl_global_cleanup();
    sb_free(&err);
    log_close();
    return rc;
}
