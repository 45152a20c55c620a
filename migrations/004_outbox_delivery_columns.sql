-- 004_outbox_delivery_columns.sql — the delivery side of the outbox (the
-- consumer confirms what it received) and clearer names for the publish side.

ALTER TABLE customer_events RENAME COLUMN last_tried_at  TO publish_last_tried_at;
ALTER TABLE customer_events RENAME COLUMN failure_reason TO publish_failure_reason;

ALTER TABLE customer_events
    ADD COLUMN deliver_status         text        NOT NULL DEFAULT 'pending'
        CHECK (deliver_status IN ('pending', 'delivered', 'failed')),
    ADD COLUMN delivered_at           timestamptz,
    ADD COLUMN deliver_try_count      integer     NOT NULL DEFAULT 0
        CHECK (deliver_try_count >= 0),
    ADD COLUMN deliver_last_tried_at  timestamptz,
    ADD COLUMN deliver_failure_reason text;

-- Redeliver scans published events nobody confirmed yet.
CREATE INDEX customer_events_undelivered_idx
    ON customer_events (created_at)
    WHERE publish_status = 'published' AND deliver_status = 'pending';
