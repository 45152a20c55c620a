-- scripts/bench/post.sql — the ceiling of POST /customer/data (pgbench,
-- scripts/bench.sh): the bare SQL of the operation.  One transaction
-- inserting the customer and its event, then one UPDATE marking the event
-- published: two commits.  Variables: cid (the bench consumer), payload (a
-- creation event's body).
BEGIN;
INSERT INTO customers (customer_id, consumer_id, name, status)
VALUES (gen_random_uuid(), :cid, 'Bench Customer', 'ACTIVE')
RETURNING customer_id \gset
INSERT INTO customer_events (event_id, customer_id, consumer_id, event_type,
    source_service, sequence, payload, request_id)
VALUES (gen_random_uuid(), :customer_id, :cid, 'customer_creation',
    'pgbench', 1, :payload, 'pgbench')
RETURNING event_id \gset
COMMIT;
UPDATE customer_events
   SET publish_status = 'published', published_at = clock_timestamp(),
       publish_try_count = 1, publish_last_tried_at = clock_timestamp()
 WHERE event_id = :event_id;
