/*
 * fcgi-app/proc/main.c — fintegrate-fcgi: arguments, configuration, the
 * listening socket, then the master.
 *
 *   fintegrate-fcgi                 socket on fd 0 (spawn-fcgi hands it over)
 *   fintegrate-fcgi --socket PATH   creates and listens on a unix socket
 *   fintegrate-fcgi --check-config  validates the environment and exits
 */
#include "../core/config.h"
#include "common/log.h"
#include "common/version.h"
#include "common/amqp_urls.h"
#include "master.h"

#include <fcgiapp.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: fintegrate-fcgi [--socket PATH] [--check-config]\n"
            "  Without --socket the listening FastCGI socket is expected on\n"
            "  fd 0 (spawn-fcgi). Configuration comes from FINTEGRATE_*\n"
            "  environment variables (see docs/OPERATIONS.md).\n");
}

static int
listening_socket(const char *path)
{
    if (path != NULL) {
        int fd = FCGX_OpenSocket(path, 128);
        if (fd < 0)
            fprintf(stderr, "fintegrate-fcgi: cannot listen on %s\n", path);
        return fd;
    }
    struct stat st;
    if (fstat(0, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "fintegrate-fcgi: fd 0 is not a socket; start me "
                        "with spawn-fcgi or give --socket PATH\n");
        return -1;
    }
    return 0;
}

static int
check_amqp_nodes(const char *list)
{
    struct amqp_nodes nodes = {0};
    struct strbuf why = STRBUF_INIT;
    int rc = amqp_nodes_parse(&nodes, list, "FINTEGRATE_AMQP_URL", &why);
    if (rc < 0)
        fprintf(stderr, "fintegrate-fcgi: %s\n", sb_str(&why));
    amqp_nodes_free(&nodes);
    sb_free(&why);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"check-config", no_argument, NULL, 'c'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *socket_path = NULL;
    bool check_only = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "s:cvh", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            socket_path = optarg;
            break;
        case 'c':
            check_only = true;
            break;
        case 'v':
            printf("fintegrate-fcgi %s\n", FINTEGRATE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }

    struct config cfg;
    struct app_err err = APP_ERR_INIT;
    int rc = 1;
    if (config_load(&cfg, NULL, &err) < 0) {
        fprintf(stderr, "fintegrate-fcgi: %s\n",
                err.msg ? err.msg
                        : "bad "
                          "configuration");
        goto out;
    }
    /* The broker's node list is checked here, not only at the first
     * connect: a list that does not parse stops the start (and
     * --check-config names the item's position, never its text). */
    if (check_amqp_nodes(cfg.amqp_url) < 0)
        goto out;
    if (check_only) {
        printf("fintegrate-fcgi: configuration OK (%ld workers)\n",
               cfg.workers);
        rc = 0;
        goto out;
    }
    if (log_open(cfg.log_file, (enum log_level)cfg.log_level) < 0) {
        fprintf(stderr,
                "fintegrate-fcgi: FINTEGRATE_LOG_FILE: cannot open "
                "%s\n",
                cfg.log_file);
        goto out;
    }
    int fd = listening_socket(socket_path);
    if (fd < 0)
        goto out;
    rc = master_run(&cfg, fd);
out:
    err_clear(&err);
    config_free(&cfg);
    log_close();
    return rc;
}
