/*
 * fcgi-app/proc/stop_signals.c — see stop_signals.h.
 */
#include "stop_signals.h"

void
stop_signals_install(sigset_t *stop_set, void (*on_stop)(int))
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop; /* no SA_RESTART: a blocked wait returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a peer may close mid-write */
    signal(SIGHUP, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);

    sigemptyset(stop_set);
    sigaddset(stop_set, SIGTERM);
    sigaddset(stop_set, SIGINT);
    sigaddset(stop_set, SIGQUIT);
    sigprocmask(SIG_BLOCK, stop_set, NULL);
}

bool
stop_signals_pending(const sigset_t *stop_set)
{
    sigset_t pending;
    if (sigpending(&pending) < 0)
        return false;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(stop_set, s) == 1 && sigismember(&pending, s) == 1)
            return true;
    return false;
}
