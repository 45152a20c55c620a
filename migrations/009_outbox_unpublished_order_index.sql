-- 009_outbox_unpublished_order_index.sql — the "is an earlier event of
-- this customer still pending?" probe of every write (and of every re-drive
-- batch) gets an index that no other plan can take from it.
--
-- Every event is inserted pending and marked published a few milliseconds
-- later, so the partial indexes on pending events are mostly dead entries
-- until vacuum removes them.  The planner sees only their live rows (next to
-- none) and their pages: with customer_events_pending_order_idx (whose key
-- is the customer and the sequence) and customer_events_pending_idx (keyed
-- by created_at, fewer pages) both qualifying for "publish_status =
-- 'pending'", it took the second and filtered every entry of it, dead ones
-- included, on every write (measured under `make bench`: PATCH at 126 r/s,
-- 11 ms of PostgreSQL CPU per request).
--
-- This index says "not published and not failed" (the same rows: the CHECK
-- admits only pending, published and failed) in words that the pending
-- index's predicate does not imply, and the probe (db/outbox_db.c) says it
-- the same way, so only this index answers it: a few entries of one
-- customer, however bloated the others are.
CREATE INDEX customer_events_unpublished_order_idx
    ON customer_events ((COALESCE(customer_id,
                                  '00000000-0000-0000-0000-000000000000'::uuid)),
                        sequence)
    WHERE publish_status <> 'published' AND publish_status <> 'failed';

DROP INDEX customer_events_pending_order_idx;
