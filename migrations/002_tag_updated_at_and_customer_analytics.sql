-- 002_tag_updated_at_and_customer_analytics.sql — tags learn when they last
-- changed; analytics_customers becomes customer_analytics (the product's
-- naming: the entity first).

ALTER TABLE customer_tags
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE analytics_customers RENAME TO customer_analytics;
ALTER INDEX analytics_customers_pkey RENAME TO customer_analytics_pkey;
ALTER INDEX analytics_customers_customer_idx RENAME TO customer_analytics_customer_idx;
