/*
 * consumer/state.c — see state.h.
 *
 * Memory: processed ids live in a ring in processing order (the oldest is
 * evicted first, by count or by age) indexed by an open-addressing hash of
 * ring slots (linear probing, backward-shift deletion, so no tombstones
 * pile up); customers live in a second open-addressing table that only
 * grows between compactions, where the least recently active are dropped.
 */
#include "state.h"

#include "common/hash.h"
#include "common/log.h"
#include "common/text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_HEADER "# fintegrate-consumer state v1\n"
#define STATE_FILE "state.log"
#define STATE_TMP "state.log.tmp"
#define STATE_LOCK "state.lock"
#define MS_PER_DAY (24LL * 3600 * 1000)

struct id_entry {
    char id[37];
    int64_t ms;
};

struct cust {
    char key[37]; /* "" = events without a customer */
    bool used;
    int64_t seq;
    int64_t ms; /* last time an event of this customer was processed */
};

struct state {
    char *dir, *path, *tmp_path;
    int fd;      /* state.log, O_APPEND */
    int lock_fd; /* state.lock, flock()ed */
    off_t file_size;
    size_t records; /* record lines in the file (the header excluded) */
    struct state_options opt;

    struct id_entry *ring; /* cap entries; count from head, oldest first */
    size_t cap, head, count;
    uint32_t *slots; /* ring index + 1; 0 = empty */
    size_t mask;     /* slots has mask + 1 entries */

    struct cust *cust;
    size_t cust_size; /* a power of two */
    size_t cust_count;
};

/* ------------------------------------------------------------------ ids */

/* The slot holding id, or the empty slot where it would go. */
static size_t
id_slot(const struct state *s, const char *id)
{
    size_t i = text_hash(id) & s->mask;
    while (s->slots[i] != 0 && strcmp(s->ring[s->slots[i] - 1].id, id) != 0)
        i = (i + 1) & s->mask;
    return i;
}

static bool
ids_has(const struct state *s, const char *id)
{
    return s->slots[id_slot(s, id)] != 0;
}

static void
ids_delete_slot(struct state *s, size_t i)
{
    size_t j = i;
    s->slots[i] = 0;
    for (;;) {
        j = (j + 1) & s->mask;
        if (s->slots[j] == 0)
            return;
        size_t k = text_hash(s->ring[s->slots[j] - 1].id) & s->mask;
        /* the entry at j stays when its home k lies cyclically in (i, j] */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            s->slots[j] = 0;
            i = j;
        }
    }
}

static void
ids_evict_oldest(struct state *s)
{
    if (s->count == 0)
        return;
    ids_delete_slot(s, id_slot(s, s->ring[s->head].id));
    s->head = (s->head + 1) % s->cap;
    s->count--;
}

/* id must be absent and canonical (lower-case). */
static void
ids_add(struct state *s, const char *id, int64_t ms)
{
    if (s->cap == 0) /* state_open refuses max_events < 1 */
        return;
    if (s->count == s->cap)
        ids_evict_oldest(s);
    size_t at = (s->head + s->count) % s->cap;
    memcpy(s->ring[at].id, id, 37);
    s->ring[at].ms = ms;
    s->slots[id_slot(s, id)] = (uint32_t)at + 1;
    s->count++;
}

static void
ids_expire(struct state *s, int64_t now_ms)
{
    int64_t oldest = now_ms - s->opt.max_age_days * MS_PER_DAY;
    while (s->count > 0 && s->ring[s->head].ms < oldest)
        ids_evict_oldest(s);
}

/* ------------------------------------------------------------ customers */

static struct cust *
cust_slot(struct cust *table, size_t size, const char *key)
{
    size_t i = text_hash(key) & (size - 1);
    while (table[i].used && strcmp(table[i].key, key) != 0)
        i = (i + 1) & (size - 1);
    return &table[i];
}

static int
cust_rehash(struct state *s, size_t size)
{
    struct cust *t = calloc(size, sizeof *t);
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < s->cust_size; i++)
        if (s->cust[i].used)
            *cust_slot(t, size, s->cust[i].key) = s->cust[i];
    free(s->cust);
    s->cust = t;
    s->cust_size = size;
    return 0;
}

static int
cust_put(struct state *s, const char *key, int64_t seq, int64_t ms)
{
    if ((s->cust_count + 1) * 2 > s->cust_size &&
        cust_rehash(s, s->cust_size * 2) < 0)
        return -1;
    struct cust *c = cust_slot(s->cust, s->cust_size, key);
    if (!c->used) {
        memset(c, 0, sizeof *c);
        memcpy(c->key, key, strlen(key) + 1);
        c->used = true;
        s->cust_count++;
    }
    if (seq > c->seq)
        c->seq = seq;
    if (ms > c->ms)
        c->ms = ms;
    return 0;
}

static int
by_ms_desc(const void *a, const void *b)
{
    int64_t x = ((const struct cust *)a)->ms, y = ((const struct cust *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Keeps the max_customers most recently active. */
static int
cust_trim(struct state *s)
{
    if (s->cust_count <= (size_t)s->opt.max_customers)
        return 0;
    struct cust *all = malloc(s->cust_count * sizeof *all);
    if (all == NULL)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < s->cust_size; i++)
        if (s->cust[i].used)
            all[n++] = s->cust[i];
    qsort(all, n, sizeof *all, by_ms_desc);
    memset(s->cust, 0, s->cust_size * sizeof *s->cust);
    s->cust_count = 0;
    for (size_t i = 0; i < (size_t)s->opt.max_customers; i++)
        *cust_slot(s->cust, s->cust_size, all[i].key) = all[i];
    s->cust_count = (size_t)s->opt.max_customers;
    free(all);
    return 0;
}

/* ---------------------------------------------------------------- files */

/* fsync of a directory: makes the entries created or renamed in it
 * durable (a new file is not on disk until its directory entry is). */
static int
fsync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

/* The directory holding path p (which it modifies and restores). */
static int
fsync_parent(char *p)
{
    char *slash = strrchr(p, '/');
    if (slash == NULL)
        return fsync_dir(".");
    if (slash == p)
        return fsync_dir("/");
    *slash = '\0';
    int rc = fsync_dir(p);
    *slash = '/';
    return rc;
}

/* Creates dir and its missing parents (0700); with `durable`, each new
 * directory's entry is fsynced in its parent. */
static int
mkdir_p(const char *dir, bool durable, struct strbuf *err)
{
    char *p = strdup(dir);
    int rc = -1;
    if (p == NULL) {
        sb_puts(err, "out of memory");
        return -1;
    }
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0700) < 0) {
            if (errno != EEXIST) {
                sb_printf(err, "cannot create the state directory %s: %s", p,
                          strerror(errno));
                goto out;
            }
        } else if (durable && fsync_parent(p) < 0) {
            sb_printf(err, "cannot make the new directory %s durable: %s", p,
                      strerror(errno));
            goto out;
        }
        *c = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        sb_printf(err, "the state directory %s is not a directory", dir);
        goto out;
    }
    rc = 0;
out:
    free(p);
    return rc;
}

static char *
join(const char *dir, const char *name)
{
    struct strbuf sb = STRBUF_INIT;
    sb_printf(&sb, "%s/%s", dir, name);
    return sb_steal(&sb);
}

static int
take_lock(struct state *s, struct strbuf *err)
{
    char *path = join(s->dir, STATE_LOCK);
    int rc = -1;
    if (path == NULL) {
        sb_puts(err, "out of memory");
        return -1;
    }
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        sb_printf(err, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            sb_printf(err,
                      "the state directory %s is in use by another "
                      "fintegrate-consumer (pid %s)",
                      s->dir, pid[0] ? pid : "unknown");
        else
            sb_printf(err, "cannot lock %s: %s", path, strerror(e));
        goto out;
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) < 0 ||
        pwrite(s->lock_fd, line, (size_t)len, 0) != len) {
        sb_printf(err, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(path);
    return rc;
}

static bool
take_int(const char *tok, int64_t min, int64_t *out)
{
    char *end;
    if (tok == NULL || *tok < '0' || *tok > '9')
        return false;
    errno = 0;
    long long v = strtoll(tok, &end, 10);
    if (errno != 0 || *end != '\0' || v < min)
        return false;
    *out = v;
    return true;
}

static bool
take_id(const char *tok, char out[37])
{
    if (tok == NULL || strlen(tok) != 36 || !is_uuid_text(tok, 36))
        return false;
    uuid_lower(tok, out);
    return true;
}

/* "-" → "", a UUID → its lower-case form. */
static bool
take_key(const char *tok, char out[37])
{
    if (tok != NULL && strcmp(tok, "-") == 0) {
        out[0] = '\0';
        return true;
    }
    return take_id(tok, out);
}

/* One record line (no newline).  -1 unreadable, -2 out of memory. */
static int
load_line(struct state *s, char *line)
{
    char *save = NULL;
    char *kind = strtok_r(line, " ", &save);
    char *a = strtok_r(NULL, " ", &save);
    char *b = strtok_r(NULL, " ", &save);
    char *c = strtok_r(NULL, " ", &save);
    char *d = strtok_r(NULL, " ", &save);
    char id[37], key[37];
    int64_t seq, ms;

    if (kind == NULL || strtok_r(NULL, " ", &save) != NULL)
        return -1;
    if (strcmp(kind, "E") == 0) {
        if (!take_id(a, id) || !take_key(b, key) || !take_int(c, 1, &seq) ||
            !take_int(d, 0, &ms))
            return -1;
        if (!ids_has(s, id))
            ids_add(s, id, ms);
        return cust_put(s, key, seq, ms) < 0 ? -2 : 0;
    }
    if (strcmp(kind, "I") == 0) {
        if (!take_id(a, id) || !take_int(b, 0, &ms) || c != NULL)
            return -1;
        if (!ids_has(s, id))
            ids_add(s, id, ms);
        return 0;
    }
    if (strcmp(kind, "C") == 0) {
        if (!take_key(a, key) || !take_int(b, 1, &seq) ||
            !take_int(c, 0, &ms) || d != NULL)
            return -1;
        return cust_put(s, key, seq, ms) < 0 ? -2 : 0;
    }
    return -1;
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads state.log into memory; creates it when missing or empty.  Leaves
 * s->fd open for appending, after cutting a torn last line. */
static int
load(struct state *s, struct strbuf *err)
{
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    off_t good_end = 0; /* just past the last complete line */
    size_t bad = 0;
    bool torn = false;
    int rc = -1;

    s->fd = open(s->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        sb_printf(err, "cannot open %s: %s", s->path, strerror(errno));
        goto out;
    }
    int rfd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0 || (f = fdopen(rfd, "r")) == NULL) {
        if (rfd >= 0)
            close(rfd);
        sb_printf(err, "cannot read %s: %s", s->path, strerror(errno));
        goto out;
    }
    bool header = true;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') {
            torn = true;
            break;
        }
        if (header) {
            if (strcmp(line, STATE_HEADER) != 0) {
                sb_printf(err,
                          "%s is not a fintegrate-consumer state file "
                          "(first line differs); move it away or choose "
                          "another state directory",
                          s->path);
                goto out;
            }
            header = false;
            good_end += n;
            continue;
        }
        line[n - 1] = '\0';
        int r = load_line(s, line);
        if (r == -2) {
            sb_puts(err, "out of memory loading the state");
            goto out;
        }
        if (r < 0)
            bad++;
        s->records++;
        good_end += n;
    }
    if (ferror(f)) {
        sb_printf(err, "cannot read %s: %s", s->path, strerror(errno));
        goto out;
    }
    if (torn) {
        log_warn("state: %s ends with an incomplete record (a crash while "
                 "writing it): cut off",
                 s->path);
        if (ftruncate(s->fd, good_end) < 0) {
            sb_printf(err, "cannot repair %s: %s", s->path, strerror(errno));
            goto out;
        }
    }
    if (bad > 0)
        log_warn("state: %zu unreadable record(s) in %s skipped", bad, s->path);
    s->file_size = good_end;
    if (header) { /* new, empty (or only a torn header): start the file */
        /* durable with its directory entry: a new state.log that a crash
         * loses would let the next start process everything again */
        if (ftruncate(s->fd, 0) < 0 ||
            write_all(s->fd, STATE_HEADER, strlen(STATE_HEADER)) < 0 ||
            (s->opt.fsync && (fdatasync(s->fd) < 0 || fsync_dir(s->dir) < 0))) {
            sb_printf(err, "cannot write %s: %s", s->path, strerror(errno));
            goto out;
        }
        s->file_size = (off_t)strlen(STATE_HEADER);
    }
    rc = 0;
out:
    free(line);
    if (f != NULL)
        fclose(f);
    return rc;
}

static bool
compaction_due(const struct state *s)
{
    return s->records > 2 * (s->count + s->cust_count) + STATE_COMPACT_SLACK;
}

/* ------------------------------------------------------------- public */

int
state_open(struct state **out, const char *dir, const struct state_options *opt,
           int64_t now_ms, struct strbuf *err)
{
    struct state *s = calloc(1, sizeof *s);
    *out = NULL;
    if (s == NULL) {
        sb_puts(err, "out of memory");
        return -1;
    }
    s->fd = -1;
    s->lock_fd = -1;
    s->opt = *opt;
    if (s->opt.max_events < 1 || s->opt.max_age_days < 1 ||
        s->opt.max_customers < 1 || s->opt.max_events > 100000000L) {
        sb_puts(err, "state retention limits out of range");
        goto fail;
    }
    s->cap = (size_t)s->opt.max_events;
    size_t slots = 16;
    while (slots < s->cap * 2)
        slots *= 2;
    s->mask = slots - 1;
    s->cust_size = 16;
    s->dir = strdup(dir);
    s->path = join(dir, STATE_FILE);
    s->tmp_path = join(dir, STATE_TMP);
    s->ring = calloc(s->cap, sizeof *s->ring);
    s->slots = calloc(slots, sizeof *s->slots);
    s->cust = calloc(s->cust_size, sizeof *s->cust);
    if (s->dir == NULL || s->path == NULL || s->tmp_path == NULL ||
        s->ring == NULL || s->slots == NULL || s->cust == NULL) {
        sb_puts(err, "out of memory");
        goto fail;
    }
    if (mkdir_p(dir, s->opt.fsync, err) < 0 || take_lock(s, err) < 0 ||
        load(s, err) < 0)
        goto fail;
    ids_expire(s, now_ms);
    if (compaction_due(s) || s->cust_count > (size_t)s->opt.max_customers) {
        if (state_compact(s, now_ms, err) < 0)
            goto fail;
    }
    *out = s;
    return 0;
fail:
    state_close(s);
    return -1;
}

void
state_close(struct state *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0)
        close(s->fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->dir);
    free(s->path);
    free(s->tmp_path);
    free(s->ring);
    free(s->slots);
    free(s->cust);
    free(s);
}

bool
state_has_event(const struct state *s, const char *event_id)
{
    char id[37];
    if (!take_id(event_id, id))
        return false;
    return ids_has(s, id);
}

int64_t
state_last_seq(const struct state *s, const char *key)
{
    if (strlen(key) > 36)
        return 0;
    const struct cust *c = cust_slot(s->cust, s->cust_size, key);
    return c->used ? c->seq : 0;
}

int
state_record(struct state *s, const char *event_id, const char *key,
             int64_t seq, int64_t now_ms, struct strbuf *err)
{
    char id[37], k[37], line[160];

    if (!take_id(event_id, id) || (key[0] != '\0' && !take_id(key, k)) ||
        seq < 1) {
        sb_puts(err, "state: not a valid event id, customer id or sequence");
        return -1;
    }
    if (key[0] == '\0')
        k[0] = '\0';
    int n = snprintf(line, sizeof line, "E %s %s %lld %lld\n", id,
                     k[0] ? k : "-", (long long)seq, (long long)now_ms);
    if (write_all(s->fd, line, (size_t)n) < 0 ||
        (s->opt.fsync && fdatasync(s->fd) < 0)) {
        sb_printf(err, "cannot write %s: %s", s->path, strerror(errno));
        /* never leave half a line for the next record to continue */
        if (ftruncate(s->fd, s->file_size) < 0)
            log_warn("state: could not cut a failed write from %s: %s", s->path,
                     strerror(errno));
        return -1;
    }
    s->file_size += n;
    s->records++;

    ids_expire(s, now_ms);
    if (!ids_has(s, id))
        ids_add(s, id, now_ms);
    if (cust_put(s, k, seq, now_ms) < 0) {
        sb_puts(err, "out of memory remembering a customer");
        return -1;
    }
    if (compaction_due(s) ||
        s->cust_count > (size_t)s->opt.max_customers +
                            (size_t)s->opt.max_customers / 10 + 16) {
        struct strbuf why = STRBUF_INIT;
        /* the log is still whole when this fails: keep going, try later */
        if (state_compact(s, now_ms, &why) < 0)
            log_warn("state: compaction failed (%s); will retry", sb_str(&why));
        sb_free(&why);
    }
    return 0;
}

/* Writes what buf holds to fd and empties it; -1 on a write error. */
static int
flush_to(int fd, struct strbuf *buf, off_t *size)
{
    if (buf->oom) {
        errno = ENOMEM;
        return -1;
    }
    if (write_all(fd, buf->buf ? buf->buf : "", buf->len) < 0)
        return -1;
    *size += (off_t)buf->len;
    sb_reset(buf);
    return 0;
}

/*
 * The compacted file is written through the descriptor that becomes the
 * log's own append descriptor once it is renamed over state.log: there is
 * no reopen after the rename, so no failure can leave records going to the
 * replaced (unlinked) file.  Anything that fails before the rename leaves
 * the old log in place and in use; after it nothing can fail but the
 * directory's fsync, which is logged.
 */
int
state_compact(struct state *s, int64_t now_ms, struct strbuf *err)
{
    struct strbuf buf = STRBUF_INIT;
    int fd = -1, rc = -1;
    off_t size = 0;

    ids_expire(s, now_ms);
    if (cust_trim(s) < 0) {
        sb_puts(err, "out of memory");
        goto out;
    }
    fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
              0600);
    if (fd < 0) {
        sb_printf(err, "cannot write %s: %s", s->tmp_path, strerror(errno));
        goto out;
    }
    sb_puts(&buf, STATE_HEADER);
    for (size_t i = 0; i < s->cust_size; i++) {
        const struct cust *c = &s->cust[i];
        if (c->used)
            sb_printf(&buf, "C %s %lld %lld\n", c->key[0] ? c->key : "-",
                      (long long)c->seq, (long long)c->ms);
        if (buf.len >= 65536 && flush_to(fd, &buf, &size) < 0)
            goto write_failed;
    }
    for (size_t i = 0; i < s->count; i++) {
        const struct id_entry *e = &s->ring[(s->head + i) % s->cap];
        sb_printf(&buf, "I %s %lld\n", e->id, (long long)e->ms);
        if (buf.len >= 65536 && flush_to(fd, &buf, &size) < 0)
            goto write_failed;
    }
    if (flush_to(fd, &buf, &size) < 0 || fsync(fd) < 0)
        goto write_failed;
    if (rename(s->tmp_path, s->path) < 0) {
        sb_printf(err, "cannot replace %s: %s", s->path, strerror(errno));
        goto out;
    }
    close(s->fd);
    s->fd = fd;
    fd = -1;
    s->file_size = size;
    s->records = s->count + s->cust_count;
    if (fsync_dir(s->dir) < 0) /* the rename itself, durable */
        log_warn("state: cannot fsync the directory %s after compaction: %s",
                 s->dir, strerror(errno));
    rc = 0;
    goto out;
write_failed:
    sb_printf(err, "cannot write %s: %s", s->tmp_path, strerror(errno));
out:
    if (fd >= 0) {
        close(fd);
        unlink(s->tmp_path);
    }
    sb_free(&buf);
    return rc;
}

size_t
state_event_count(const struct state *s)
{
    return s->count;
}

size_t
state_customer_count(const struct state *s)
{
    return s->cust_count;
}

size_t
state_file_records(const struct state *s)
{
    return s->records;
}
