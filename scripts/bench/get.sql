-- scripts/bench/get.sql — the ceiling of GET /customer/data (pgbench,
-- scripts/bench.sh): one SELECT of a random preloaded customer with its
-- tags, the service's own query.  Variables: cid, ncust, prefix.
\set n random(1, :ncust)
SELECT c.customer_id, c.consumer_id, c.name, c.status,
       fintegrate_ts(c.created_at), fintegrate_ts(c.updated_at),
       (SELECT COALESCE(json_object_agg(t.tag_key, t.tag_value
                        ORDER BY t.tag_key COLLATE "C"), '{}')
          FROM customer_tags t WHERE t.customer_id = c.customer_id)
  FROM customers c
 WHERE c.customer_id = CAST(:prefix || lpad(CAST(:n AS text), 12, '0') AS uuid)
   AND (CAST(:cid AS uuid) IS NULL OR c.consumer_id = :cid);
