-- 003_outbox_publish_columns.sql — customer_events becomes a transactional
-- outbox: every row remembers whether it reached the broker.
--
-- publish_try_count starts at 0 and the inline publish after commit makes it
-- 1; an event at 0 younger than 30 s is being published right now.

ALTER TABLE customer_events
    ADD COLUMN publish_status    text        NOT NULL DEFAULT 'pending'
        CHECK (publish_status IN ('pending', 'published', 'failed')),
    ADD COLUMN published_at      timestamptz,
    ADD COLUMN publish_try_count integer     NOT NULL DEFAULT 0
        CHECK (publish_try_count >= 0),
    ADD COLUMN last_tried_at     timestamptz,
    ADD COLUMN failure_reason    text;

-- Resend scans pending events by age; the partial index stays small because
-- almost every event is published.
CREATE INDEX customer_events_pending_idx
    ON customer_events (created_at)
    WHERE publish_status = 'pending';
