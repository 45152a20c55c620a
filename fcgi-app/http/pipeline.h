/*
 * fcgi-app/http/pipeline.h — one request, start to finish: the gate every
 * route passes, the handler call, the envelope, and the log line.
 */
#ifndef FI_PIPELINE_H
#define FI_PIPELINE_H

#include "../core/config.h"
#include "../db/db.h"
#include "../outbox/publisher.h"

#include <fcgiapp.h>

struct pipeline {
    const struct config *cfg; /* borrowed */
    struct db *db;            /* borrowed; the worker's connection */
    struct publisher *pub;    /* borrowed; the worker's publisher */
};

/* Serves one accepted request; always writes exactly one response. */
void pipeline_serve(struct pipeline *p, FCGX_Request *fcgx);

#endif
