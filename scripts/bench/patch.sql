-- scripts/bench/patch.sql — the ceiling of PATCH /customer/change-status
-- (pgbench, scripts/bench.sh): one transaction updating a random preloaded
-- customer's status and inserting its event (the next sequence of that
-- customer, taken under the row lock), then one UPDATE marking the event
-- published: two commits.  Variables: cid, payload, ncust, prefix (the
-- preloaded ids are prefix || %012d of 1..ncust; a set of its own, so the
-- service's run is not disturbed).
\set n random(1, :ncust)
BEGIN;
UPDATE customers
   SET status = CASE status WHEN 'ACTIVE' THEN 'INACTIVE' ELSE 'ACTIVE' END,
       updated_at = clock_timestamp()
 WHERE customer_id = CAST(:prefix || lpad(CAST(:n AS text), 12, '0') AS uuid)
RETURNING customer_id \gset
INSERT INTO customer_events (event_id, customer_id, consumer_id, event_type,
    source_service, sequence, payload, request_id)
VALUES (gen_random_uuid(), :customer_id, :cid, 'customer_status_change',
    'pgbench',
    (SELECT COALESCE(max(sequence), 0) + 1 FROM customer_events
      WHERE customer_id = :customer_id),
    :payload, 'pgbench')
RETURNING event_id \gset
COMMIT;
UPDATE customer_events
   SET publish_status = 'published', published_at = clock_timestamp(),
       publish_try_count = 1, publish_last_tried_at = clock_timestamp()
 WHERE event_id = :event_id;
