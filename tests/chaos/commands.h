/*
 * tests/chaos/commands.h — the three subcommands of fintegrate-chaos; each
 * takes the arguments after its name (argv[0] is the subcommand) and
 * returns the process exit status.
 *
 *   load    (load.c)        drive write load, log every attempt
 *   report  (report_cmd.c)  table per fault window, the 5xx judgement
 *   verify  (verify.c)      accepted events vs the consumers' output
 *
 * Exit statuses: 0 ok, 1 the check failed (report, verify), 2 usage or
 * input error, 3 a runtime error (out of memory, cannot write).
 */
#ifndef CHAOS_COMMANDS_H
#define CHAOS_COMMANDS_H

#define CHAOS_EXIT_OK 0
#define CHAOS_EXIT_FAIL 1
#define CHAOS_EXIT_USAGE 2
#define CHAOS_EXIT_ERROR 3

int load_main(int argc, char **argv);
int report_main(int argc, char **argv);
int verify_main(int argc, char **argv);

#endif
