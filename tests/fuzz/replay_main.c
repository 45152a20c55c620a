/*
 * tests/fuzz/replay_main.c — runs a libFuzzer target without libFuzzer:
 * feeds every file of its corpus folder to LLVMFuzzerTestOneInput once,
 * so `make test` replays every corpus with the ordinary build (a crash
 * found once stays fixed).
 *
 * The corpus folder is argv[1], else $FINTEGRATE_FUZZ_CORPUS, else the
 * folder compiled in as FUZZ_CORPUS_DIR (the target's tests/fuzz/<name>/).
 * Files are fed in name order.  The last line is "N passed, 0 failed"
 * (the summary scripts/test.sh counts); an input that breaks an assertion
 * or a sanitizer ends the process, after its path is written to stderr.
 * Exit status 0 when every file ran, 1 when the folder cannot be read or
 * holds nothing.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FUZZ_CORPUS_DIR
#define FUZZ_CORPUS_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static const char *current; /* the input being run, for a crash report */

static void
on_crash(int sig)
{
    static const char head[] = "replay: crashed on ";
    if (current != NULL) {
        (void)!write(2, head, sizeof head - 1);
        (void)!write(2, current, strlen(current));
        (void)!write(2, "\n", 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The whole file (owned; free()), its length in *len; NULL on error. */
static uint8_t *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = malloc((size_t)n + 1); /* + 1: an empty file is not NULL */
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    *len = (size_t)n;
out:
    fclose(f);
    return buf;
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : getenv("FINTEGRATE_FUZZ_CORPUS");
    char **names = NULL;
    size_t n = 0, cap = 0, ran = 0;
    struct dirent *e;
    int rc = 1;

    if (dir == NULL || dir[0] == '\0')
        dir = FUZZ_CORPUS_DIR;
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot read the corpus folder %s\n", dir);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **more = realloc(names, cap * sizeof *names);
            if (more == NULL)
                goto out;
            names = more;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if ((names[n] = malloc(len)) == NULL)
            goto out;
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    if (n > 0)
        qsort(names, n, sizeof *names, by_name);
    signal(SIGSEGV, on_crash);
    signal(SIGABRT, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGFPE, on_crash);
    signal(SIGILL, on_crash);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        size_t len = 0;
        if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        uint8_t *data = slurp(names[i], &len);
        if (data == NULL) {
            fprintf(stderr, "replay: cannot read %s\n", names[i]);
            goto out;
        }
        current = names[i];
        LLVMFuzzerTestOneInput(data, len);
        current = NULL;
        free(data);
        ran++;
    }
    if (ran == 0)
        fprintf(stderr, "replay: no input in %s\n", dir);
    else
        rc = 0;
out:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    printf("replayed the corpus %s\n", dir);
    printf("%zu passed, %d failed\n", ran, rc);
    return rc;
}
