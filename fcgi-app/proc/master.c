/*
 * fcgi-app/proc/master.c — see master.h.
 */
#include "master.h"
#include "../core/log.h"
#include "../core/clock.h"
#include "../metrics/metrics.h"
#include "relay_proc.h"
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

struct child {
    pid_t pid;     /* 0 = free slot */
    bool retiring; /* asked to stop by a roll: not replaced */
    bool relay;    /* the relay process, not a worker */
};

struct master {
    const struct config *cfg;
    int listen_fd;
    struct child *children;
    size_t cap;
    long long respawn_at;     /* when the next replacement may start (ms) */
    long backoff_ms;          /* current crash-storm delay */
    long long crash_times[8]; /* recent abnormal exits (ms), a ring */
    size_t crash_next;
    bool stopping;
    long long stop_deadline;
    unsigned long restarts;
};

static int sig_pipe[2] = {-1, -1};

static void
on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w; /* the pipe is non-blocking; a full pipe already has a wakeup */
    errno = saved;
}

static int
install_signals(void)
{
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
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

/* Running children of one kind (workers or the relay) not retiring. */
static size_t
count_active(const struct master *m, bool relay)
{
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid != 0 && !m->children[i].retiring &&
            m->children[i].relay == relay)
            n++;
    return n;
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

static int
spawn_one(struct master *m, bool relay)
{
    size_t slot = m->cap;
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid == 0) {
            slot = i;
            break;
        }
    if (slot == m->cap)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        log_error("master: fork failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        if (relay) {
            close(m->listen_fd);
            relay_main(m->cfg, slot);
        }
        worker_main(m->cfg, m->listen_fd, slot);
    }
    m->children[slot].pid = pid;
    m->children[slot].retiring = false;
    m->children[slot].relay = relay;
    return 0;
}

/* Starts workers until the pool is full, and the relay (one per node)
 * when it is on, unless a backoff delay holds. */
static void
fill_pool(struct master *m)
{
    if (m->stopping || mono_ms() < m->respawn_at)
        return;
    while (count_active(m, false) < (size_t)m->cfg->workers)
        if (spawn_one(m, false) < 0) {
            m->respawn_at = mono_ms() + 1000;
            return;
        }
    if (m->cfg->relay_interval_ms > 0 && count_active(m, true) == 0 &&
        spawn_one(m, true) < 0)
        m->respawn_at = mono_ms() + 1000;
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
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = NULL;
        for (size_t i = 0; i < m->cap; i++)
            if (m->children[i].pid == pid)
                c = &m->children[i];
        if (c == NULL)
            continue;
        bool abnormal = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (abnormal)
            log_warn(
                "master: %s %d %s %d", c->relay ? "relay" : "worker", (int)pid,
                WIFSIGNALED(status) ? "killed by signal" : "exited with",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        metrics_clear_slot((size_t)(c - m->children));
        if (!c->retiring && !m->stopping) {
            m->restarts++;
            metrics_worker_restart();
            if (abnormal)
                note_crash(m);
        }
        c->pid = 0;
        c->retiring = false;
    }
}

static void
signal_all(struct master *m, int signo)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid != 0)
            kill(m->children[i].pid, signo);
}

static void
roll(struct master *m)
{
    if (m->stopping)
        return;
    log_info("master: SIGHUP: rolling %ld workers", m->cfg->workers);
    pid_t old[m->cap];
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->children[i].pid != 0 && !m->children[i].retiring) {
            m->children[i].retiring = true;
            old[n++] = m->children[i].pid;
        }
    m->respawn_at = 0;
    fill_pool(m);
    for (size_t i = 0; i < n; i++)
        kill(old[i], SIGTERM);
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
    return until > now ? (int)(until - now) : 0;
}

int
master_run(const struct config *cfg, int listen_fd)
{
    struct master m = {.cfg = cfg, .listen_fd = listen_fd};
    /* room for a roll in progress, the relay included */
    m.cap = ((size_t)cfg->workers + 1) * 3;
    if (m.cap > METRICS_MAX_SLOTS)
        m.cap = METRICS_MAX_SLOTS;
    m.children = calloc(m.cap, sizeof *m.children);
    if (m.children == NULL || install_signals() < 0 || metrics_init() < 0) {
        log_error("master: cannot start: %s", strerror(errno));
        free(m.children);
        return 1;
    }
    /* Workers wait in ppoll() and then accept; with several of them woken
     * for one connection, the losers must not block in accept(). */
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        log_error("master: cannot make the socket non-blocking: %s",
                  strerror(errno));
        free(m.children);
        return 1;
    }
    log_info("master: starting %ld workers", cfg->workers);
    fill_pool(&m);

    while (!(m.stopping && count_alive(&m) == 0)) {
        struct pollfd pfd = {.fd = sig_pipe[0], .events = POLLIN};
        int rc = poll(&pfd, 1, poll_timeout(&m));
        if (rc > 0) {
            unsigned char sigs[64];
            ssize_t n;
            while ((n = read(sig_pipe[0], sigs, sizeof sigs)) > 0)
                for (ssize_t i = 0; i < n; i++) {
                    if (sigs[i] == SIGCHLD)
                        reap(&m);
                    else if (sigs[i] == SIGHUP)
                        roll(&m);
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
        fill_pool(&m);
    }
    log_info("master: stopped (%lu workers replaced while running)",
             m.restarts);
    free(m.children);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    return 0;
}
