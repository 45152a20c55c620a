-- 006_outbox_health_indexes.sql — GET /events/health and the metrics count
-- failed publishes and failed deliveries; partial indexes keep those counts
-- cheap however large the outbox grows (both sets are small by design).

CREATE INDEX customer_events_publish_failed_idx
    ON customer_events (created_at)
    WHERE publish_status = 'failed';

CREATE INDEX customer_events_deliver_failed_idx
    ON customer_events (created_at)
    WHERE deliver_status = 'failed';
