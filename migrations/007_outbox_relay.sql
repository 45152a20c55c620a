-- 007_outbox_relay.sql — what the relay (the automatic re-drive) and the
-- per-customer publish order need.
--
-- publish_last_refused: the last try was refused by a broker that answered
-- (a nack, a basic.return, no confirm in time).  Only such events wait out a
-- back-off before the relay tries them again; an event whose last try found
-- the broker unreachable, or that was held behind an earlier event of its
-- customer, is due at the next pass.
ALTER TABLE customer_events
    ADD COLUMN publish_last_refused boolean NOT NULL DEFAULT false;

-- "Is an earlier event of this customer still pending?" is asked by every
-- write (the inline hold) and by every re-drive batch, so it must be one
-- index probe.  Consumer and key events have no customer and share one
-- sequence: they are keyed by the nil UUID.
CREATE INDEX customer_events_pending_order_idx
    ON customer_events ((COALESCE(customer_id,
                                  '00000000-0000-0000-0000-000000000000'::uuid)),
                        sequence)
    WHERE publish_status = 'pending';

-- The latest relay pass of any node, for GET /events/health.  One row.
CREATE TABLE outbox_relay_state (
    singleton           boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    last_pass_at        timestamptz,
    last_pass_published bigint      NOT NULL DEFAULT 0
);
INSERT INTO outbox_relay_state DEFAULT VALUES;
