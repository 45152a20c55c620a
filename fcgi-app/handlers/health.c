/*
 * fcgi-app/handlers/health.c — GET /health: is the database answering?  The
 * broker's state is what this worker already knows (its breaker, its
 * connection), read without a packet: /health never waits on the broker
 * (docs/API.md §5.8), so a paused or black-holed broker host
 * cannot hold a worker here.
 */
#include "handler.h"
#include "common/version.h"

int
health_get(struct ctx *c, json_t **data, struct app_err *err)
{
    /* The pipeline ran db_ensure() already; a cheap round trip proves the
     * server answers now, not just that the socket looked fine. */
    if (db_ping(c->db, err) < 0) {
        err_set(err, 503, "The database is unavailable");
        return 503;
    }
    *data = json_pack("{s:s, s:s, s:s}", "database", "up", "broker",
                      publisher_broker_state(c->pub, c->db), "version",
                      FINTEGRATE_VERSION);
    return 200;
}
