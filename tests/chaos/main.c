/*
 * tests/chaos/main.c — fintegrate-chaos, the load driver, reporter and
 * verifier of the chaos run (issue 11; scripts/chaos.sh calls it):
 *
 *   fintegrate-chaos load   --url URL [--url URL2 ...] --keys FILE --rate N
 *                           --seconds S --out FILE [--connections C]
 *                           [--retry] [--seed X]
 *   fintegrate-chaos report --requests FILE --windows FILE
 *   fintegrate-chaos verify --db CONNINFO --consumer-out FILE [...]
 *                           [--consumers a,b] [--wait S] [--since TS]
 *
 * Only dispatches; see commands.h for the exit statuses.
 */
#include "commands.h"

#include <stdio.h>
#include <string.h>

static void
usage(FILE *to)
{
    fputs("usage: fintegrate-chaos load|report|verify [options]  "
          "(--help after a subcommand for its options)\n"
          "  load    steady write load through the app nodes, one log line "
          "per attempt\n"
          "  report  a table per fault window; fails on 5xx outside the "
          "database windows\n"
          "  verify  accepted events vs the consumers' output: lost, twice, "
          "order\n",
          to);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CHAOS_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "load") == 0)
        return load_main(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return report_main(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return verify_main(argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "fintegrate-chaos: unknown subcommand \"%s\"\n", cmd);
    usage(stderr);
    return CHAOS_EXIT_USAGE;
}
