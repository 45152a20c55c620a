/*
 * consumer/app.c — see app.h.
 */
#include "app.h"

#include "common/clock.h"
#include "common/log.h"

#include <stdint.h>
#include <time.h>

volatile sig_atomic_t app_stop_requested;

bool
app_stopping(const struct app *a)
{
    return app_stop_requested || a->exit_code != 0;
}

void
app_nap(const struct app *a, long ms)
{
    uint64_t until = mono_ms() + (uint64_t)(ms < 0 ? 0 : ms);
    while (!app_stopping(a)) {
        uint64_t now = mono_ms();
        if (now >= until)
            return;
        uint64_t step = until - now < 100 ? until - now : 100;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void
app_fatal(struct app *a, const char *what)
{
    log_error("%s: stopping (exit status %d); unfinished messages stay in "
              "the queue",
              what, APP_EXIT_FATAL);
    a->exit_code = APP_EXIT_FATAL;
}
