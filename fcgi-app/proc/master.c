/*
 * fcgi-app/proc/master.c — see master.h.
 */
#include "master.h"
#include "common/log.h"
#include "common/clock.h"
#include "../metrics/metrics.h"
#include "ready.h"
#include "relay_proc.h"
#include "roll.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STOP_GRACE_MS 10000 /* then SIGKILL */
#define STORM_WINDOW_MS 10000
#define BACKOFF_MAX_MS 5000
/* A roll's replacement that is not ready by then is given up: long enough
 * for a slow database connection (FINTEGRATE_DB_URL's connect_timeout)
 * and the publisher's warm-up, short enough that a roll stuck behind an
 * outage retries with a fresh process. */
#define READY_TIMEOUT_MS 30000
#define ROLL_RETRY_MIN_MS 1000 /* after a failed replacement, doubling */
#define ROLL_RETRY_MAX_MS 30000
#define ROLL_SURGE 1 /* replacements starting at a time, per kind */

struct child {
    pid_t pid;           /* 0 = free slot */
    struct roll_child r; /* what the planner sees */
};

struct master {
    const struct config *cfg;
    int listen_fd;
    struct child *children;
    size_t cap;
    /* the planner's input and output, cap entries each */
    struct roll_child *view;
    size_t *view_slot; /* view[i] is children[view_slot[i]] */
    struct roll_stop *stops;
    long long respawn_at;     /* when the next replacement may start (ms) */
    long backoff_ms;          /* current crash-storm delay */
    long long crash_times[8]; /* recent abnormal exits (ms), a ring */
    size_t crash_next;
    unsigned gen;            /* bumped by every SIGHUP */
    bool rolling;            /* old children remain (for the log) */
    long long roll_started;  /* ms */
    unsigned long rolled;    /* old children stopped by this roll */
    long long roll_retry_at; /* no replacement forked before (ms) */
    long roll_backoff_ms;    /* the next failure's delay; 0 = the minimum */
    bool stopping;
    long long stop_deadline;
    unsigned long restarts;
};

static int sig_pipe[2] = {-1, -1};
/* The children's readiness pipe (proc/ready.h): they write their pid. */
static int ready_pipe[2] = {-1, -1};

static void
on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w; /* the pipe is non-blocking; a full pipe already has a wakeup */
    errno = saved;
}

static void
close_pipes(void)
{
    int *fds[] = {&sig_pipe[0], &sig_pipe[1], &ready_pipe[0], &ready_pipe[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
}

static int
install_signals(void)
{
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0 ||
        pipe2(ready_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static const char *
kind_name(enum roll_kind kind)
{
    return kind == ROLL_RELAY ? "relay" : "worker";
}

static size_t
count_alive(const struct master *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid != 0)
            n++;
    return n;
}

/* Copies the live children into the planner's view; returns how many. */
static size_t
build_view(struct master *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid != 0) {
            m->view[n] = m->children[i].r;
            m->view_slot[n++] = i;
        }
    return n;
}

static struct child *
find_child(struct master *m, pid_t pid)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid == pid)
            return &m->children[i];
    return NULL;
}

/* Forks a child of `kind` into a free slot.  A roll's replacement
 * (`replacement`) waits for its database before it says it is ready. */
static int
spawn_one(struct master *m, enum roll_kind kind, bool replacement)
{
    size_t slot = m->cap;
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid == 0) {
            slot = i;
            break;
        }
    if (slot == m->cap) {
        log_error("master: no free slot for a %s (%zu processes still run)",
                  kind_name(kind), m->cap);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("master: fork failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        struct ready ready = {.fd = ready_pipe[1], .await_db = replacement};
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        close(ready_pipe[0]);
        if (kind == ROLL_RELAY) {
            close(m->listen_fd);
            relay_main(m->cfg, slot, &ready);
        }
        worker_main(m->cfg, m->listen_fd, slot, &ready);
    }
    m->children[slot] = (struct child){
        .pid = pid,
        .r = {.kind = kind,
              .gen = m->gen,
              .replacement = replacement,
              .started_ms = mono_ms()},
    };
    return 0;
}

/* A roll's replacement failed: no new one before a growing delay, which
 * is returned (ms) for the log line. */
static long
roll_failure(struct master *m)
{
    long delay = m->roll_backoff_ms ? m->roll_backoff_ms : ROLL_RETRY_MIN_MS;
    m->roll_retry_at = mono_ms() + delay;
    m->roll_backoff_ms =
        delay * 2 > ROLL_RETRY_MAX_MS ? ROLL_RETRY_MAX_MS : delay * 2;
    return delay;
}

/* Reads the pids the children wrote to the readiness pipe.  A pid that is
 * no child any more (it wrote, then died and was reaped) is ignored: the
 * pipe is read again right after every reap, before the next fork could
 * reuse that pid. */
static void
read_ready(struct master *m)
{
    pid_t pids[64];
    ssize_t n;
    while ((n = read(ready_pipe[0], pids, sizeof pids)) > 0)
        for (size_t i = 0; i < (size_t)n / sizeof pids[0]; i++) {
            struct child *c = find_child(m, pids[i]);
            if (c == NULL || c->r.ready)
                continue;
            c->r.ready = true;
            if (c->r.replacement)
                m->roll_backoff_ms = 0;
            if (m->rolling && !c->r.retiring &&
                (c->r.replacement || c->r.gen == m->gen))
                log_info("master: roll: new %s %d is ready",
                         kind_name(c->r.kind), (int)c->pid);
        }
}

/* An abnormal exit: grow the delay if they come in a storm. */
static void
note_crash(struct master *m)
{
    long long now = mono_ms();
    m->crash_times[m->crash_next++ % 8] = now;
    size_t recent = 0;
    for (size_t i = 0; i < 8; i++)
        if (m->crash_times[i] != 0 && now - m->crash_times[i] < STORM_WINDOW_MS)
            recent++;
    if (recent >= 5) {
        m->backoff_ms = m->backoff_ms ? m->backoff_ms * 2 : 250;
        if (m->backoff_ms > BACKOFF_MAX_MS)
            m->backoff_ms = BACKOFF_MAX_MS;
        m->respawn_at = now + m->backoff_ms;
        log_warn("master: %zu workers died within %d s; backing off %ld ms",
                 recent, STORM_WINDOW_MS / 1000, m->backoff_ms);
    } else {
        m->backoff_ms = 0;
    }
}

static void
reap(struct master *m)
{
    int status;
    pid_t pid;
    read_ready(m);
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = find_child(m, pid);
        if (c == NULL)
            continue;
        bool abnormal = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (abnormal)
            log_warn("master: %s %d %s %d", kind_name(c->r.kind), (int)pid,
                     WIFSIGNALED(status) ? "killed by signal" : "exited with",
                     WIFSIGNALED(status) ? WTERMSIG(status)
                                         : WEXITSTATUS(status));
        metrics_clear_slot((size_t)(c - m->children));
        if (c->r.replacement && !c->r.ready && !c->r.retiring && !m->stopping) {
            /* The pool lost nothing: the old child still runs. */
            long delay = roll_failure(m);
            log_warn("master: roll: new %s %d ended before it was ready; "
                     "the old ones keep running; retrying in %ld ms",
                     kind_name(c->r.kind), (int)pid, delay);
        } else if (!c->r.retiring && !m->stopping) {
            m->restarts++;
            metrics_worker_restart();
            if (abnormal)
                note_crash(m);
        }
        memset(c, 0, sizeof *c);
    }
    read_ready(m);
}

static void
signal_all(struct master *m, int signo)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid != 0)
            kill(m->children[i].pid, signo);
}

/* SIGHUP: a new generation; step() replaces every older child. */
static void
begin_roll(struct master *m)
{
    if (m->stopping)
        return;
    m->gen++;
    m->roll_retry_at = 0; /* a new SIGHUP retries at once */
    m->roll_backoff_ms = 0;
    if (m->rolling) {
        log_info("master: SIGHUP during a roll: the processes started "
                 "before it are replaced too");
        return;
    }
    m->rolling = true;
    m->roll_started = mono_ms();
    m->rolled = 0;
    log_info("master: SIGHUP: rolling %ld workers%s; each old one stops once "
             "a new one is ready",
             m->cfg->workers,
             m->cfg->relay_interval_ms > 0 ? " and the relay" : "");
}

/* The planner's decisions, carried out: stops first, then forks (the
 * fills after a crash-storm delay, the replacements after a failed one). */
static void
step(struct master *m)
{
    long long now = mono_ms();
    size_t n = build_view(m);
    struct roll_params p = {
        .want = {(size_t)m->cfg->workers, m->cfg->relay_interval_ms > 0},
        .surge = ROLL_SURGE,
        .gen = m->gen,
        .now_ms = now,
        .ready_timeout_ms = READY_TIMEOUT_MS,
    };
    struct roll_plan plan;
    roll_plan(m->view, n, &p, &plan, m->stops);

    for (size_t i = 0; i < plan.n_stop; i++) {
        struct child *c = &m->children[m->view_slot[m->stops[i].index]];
        if (m->stops[i].why == ROLL_STOP_REPLACED) {
            m->rolled++;
            log_info("master: roll: asking old %s %d to stop (a new one is "
                     "ready)",
                     kind_name(c->r.kind), (int)c->pid);
        } else {
            long delay = roll_failure(m);
            log_warn("master: roll: new %s %d not ready after %d s; stopping "
                     "it, the old ones keep running; retrying in %ld ms",
                     kind_name(c->r.kind), (int)c->pid, READY_TIMEOUT_MS / 1000,
                     delay);
        }
        c->r.retiring = true;
        kill(c->pid, SIGTERM);
    }

    for (int kind = 0; kind < ROLL_KINDS; kind++) {
        for (size_t i = 0; i < plan.fill[kind]; i++) {
            if (mono_ms() < m->respawn_at)
                break;
            if (spawn_one(m, (enum roll_kind)kind, false) < 0) {
                m->respawn_at = mono_ms() + 1000;
                break;
            }
        }
        for (size_t i = 0; i < plan.replace[kind]; i++) {
            if (mono_ms() < m->roll_retry_at)
                break;
            if (spawn_one(m, (enum roll_kind)kind, true) < 0) {
                long delay = roll_failure(m);
                log_warn("master: roll: cannot start a new %s; the old ones "
                         "keep running; retrying in %ld ms",
                         kind_name((enum roll_kind)kind), delay);
                break;
            }
        }
    }

    if (m->rolling && !roll_in_progress(m->view, build_view(m), m->gen)) {
        m->rolling = false;
        log_info("master: roll complete: %lu old processes replaced in %lld "
                 "ms",
                 m->rolled, mono_ms() - m->roll_started);
    }
}

static void
begin_stop(struct master *m, int signo)
{
    if (m->stopping)
        return;
    log_info("master: signal %d: stopping %zu workers gracefully", signo,
             count_alive(m));
    m->stopping = true;
    m->stop_deadline = mono_ms() + STOP_GRACE_MS;
    signal_all(m, SIGTERM);
}

static int
poll_timeout(const struct master *m)
{
    long long now = mono_ms();
    long long until = now + 1000;
    if (m->stopping && m->stop_deadline < until)
        until = m->stop_deadline;
    if (!m->stopping && m->respawn_at > now && m->respawn_at < until)
        until = m->respawn_at;
    if (!m->stopping && m->rolling && m->roll_retry_at > now &&
        m->roll_retry_at < until)
        until = m->roll_retry_at;
    return until > now ? (int)(until - now) : 0;
}

int
master_run(const struct config *cfg, int listen_fd)
{
    struct master m = {.cfg = cfg, .listen_fd = listen_fd};
    int rc = 1;
    /* room for a roll in progress, the relay included, and old workers
     * still finishing their request */
    m.cap = ((size_t)cfg->workers + 1) * 3;
    if (m.cap > METRICS_MAX_SLOTS)
        m.cap = METRICS_MAX_SLOTS;
    m.children = calloc(m.cap, sizeof *m.children);
    m.view = calloc(m.cap, sizeof *m.view);
    m.view_slot = calloc(m.cap, sizeof *m.view_slot);
    m.stops = calloc(m.cap, sizeof *m.stops);
    if (m.children == NULL || m.view == NULL || m.view_slot == NULL ||
        m.stops == NULL || install_signals() < 0 || metrics_init() < 0) {
        log_error("master: cannot start: %s", strerror(errno));
        goto out;
    }
    /* Workers wait (epoll, EPOLLEXCLUSIVE) and then accept; when more
     * than one is woken for one connection, the losers must not block in
     * accept(). */
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        log_error("master: cannot make the socket non-blocking: %s",
                  strerror(errno));
        goto out;
    }
    log_info("master: starting %ld workers", cfg->workers);
    step(&m);

    while (!(m.stopping && count_alive(&m) == 0)) {
        struct pollfd pfd[2] = {
            {.fd = sig_pipe[0], .events = POLLIN},
            {.fd = ready_pipe[0], .events = POLLIN},
        };
        if (poll(pfd, 2, poll_timeout(&m)) > 0) {
            read_ready(&m);
            unsigned char sigs[64];
            ssize_t n;
            while ((n = read(sig_pipe[0], sigs, sizeof sigs)) > 0)
                for (ssize_t i = 0; i < n; i++) {
                    if (sigs[i] == SIGCHLD)
                        reap(&m);
                    else if (sigs[i] == SIGHUP)
                        begin_roll(&m);
                    else
                        begin_stop(&m, sigs[i]);
                }
        }
        reap(&m);
        if (m.stopping && mono_ms() >= m.stop_deadline && count_alive(&m)) {
            log_warn("master: %zu workers still running after %d s; killing",
                     count_alive(&m), STOP_GRACE_MS / 1000);
            signal_all(&m, SIGKILL);
            m.stop_deadline = mono_ms() + 60000;
        }
        if (!m.stopping)
            step(&m);
    }
    log_info("master: stopped (%lu workers replaced while running)",
             m.restarts);
    rc = 0;
out:
    free(m.children);
    free(m.view);
    free(m.view_slot);
    free(m.stops);
    close_pipes();
    return rc;
}
