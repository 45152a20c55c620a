/*
 * fcgi-app/core/app_err.h — an error that carries its HTTP status, the
 * sentence the client reads, and a detail for the log only.
 *
 * The layer that finds a problem fills the error; the pipeline turns it into
 * the envelope.  `msg` never holds SQL text or library messages (those go to
 * `detail`, which only the log sees).
 *
 * Ownership: both strings are owned by the struct; err_clear() frees them
 * and is safe to call twice.  Setting an error that is already set replaces
 * it, except through err_add(), which appends "; " + sentence (several
 * validation problems reported at once).
 */
#ifndef FI_APP_ERR_H
#define FI_APP_ERR_H

struct app_err {
    int status;   /* HTTP status; 0 = no error */
    char *msg;    /* client-facing sentence (owned) */
    char *detail; /* log-only detail, may be NULL (owned) */
    char code[8]; /* machine code from the layer below (a SQLSTATE), or "" */
};

#define APP_ERR_INIT                                                           \
    {                                                                          \
        0, NULL, NULL, ""                                                      \
    }

void err_set(struct app_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends a sentence, joined with "; ".  Keeps the first status. */
void err_add(struct app_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void err_detail(struct app_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void err_clear(struct app_err *e);

#endif
