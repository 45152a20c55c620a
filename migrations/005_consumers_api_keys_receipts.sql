-- 005_consumers_api_keys_receipts.sql — tenancy.  Consumers (the banking
-- systems that integrate with us), their API keys (only a SHA-256 hash is
-- stored), delivery receipts, and the owner of every customer, snapshot and
-- event.  Rows that existed before belong to the system consumer.

CREATE TABLE consumers (
    consumer_id   uuid        PRIMARY KEY,
    consumer_name text        NOT NULL UNIQUE
                              CHECK (consumer_name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    status        text        NOT NULL DEFAULT 'ACTIVE'
                              CHECK (status IN ('ACTIVE', 'DEACTIVATED')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The system consumer is the administrator; its id is part of the contract.
INSERT INTO consumers (consumer_id, consumer_name)
VALUES ('00000000-0000-0000-0000-000000000001', 'system_default');

CREATE TABLE consumer_api_keys (
    api_key_id     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    consumer_id    uuid        NOT NULL REFERENCES consumers (consumer_id),
    api_key_hash   text        NOT NULL UNIQUE CHECK (api_key_hash ~ '^[0-9a-f]{64}$'),
    api_key_prefix text        NOT NULL,
    api_key_status text        NOT NULL DEFAULT 'active'
                               CHECK (api_key_status IN ('active', 'expired', 'deactivated')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- At most one active key per consumer: rotation deactivates the old one in
-- the same transaction, and the index makes any other path fail loudly.
CREATE UNIQUE INDEX consumer_api_keys_one_active_idx
    ON consumer_api_keys (consumer_id)
    WHERE api_key_status = 'active';

-- Owners.
ALTER TABLE customers ADD COLUMN consumer_id uuid;
UPDATE customers SET consumer_id = '00000000-0000-0000-0000-000000000001';
ALTER TABLE customers
    ALTER COLUMN consumer_id SET NOT NULL,
    ADD CONSTRAINT customers_consumer_fk
        FOREIGN KEY (consumer_id) REFERENCES consumers (consumer_id);
CREATE INDEX customers_consumer_idx ON customers (consumer_id);

ALTER TABLE customer_events ADD COLUMN consumer_id uuid;
UPDATE customer_events SET consumer_id = '00000000-0000-0000-0000-000000000001';
ALTER TABLE customer_events
    ALTER COLUMN consumer_id SET NOT NULL,
    ADD CONSTRAINT customer_events_consumer_fk
        FOREIGN KEY (consumer_id) REFERENCES consumers (consumer_id);
CREATE INDEX customer_events_consumer_idx
    ON customer_events (consumer_id, created_at);

ALTER TABLE customer_analytics ADD COLUMN consumer_id uuid;
UPDATE customer_analytics SET consumer_id = '00000000-0000-0000-0000-000000000001';
ALTER TABLE customer_analytics
    ALTER COLUMN consumer_id SET NOT NULL,
    ADD CONSTRAINT customer_analytics_consumer_fk
        FOREIGN KEY (consumer_id) REFERENCES consumers (consumer_id);

-- One sequence per customer; events without a customer (consumer and key
-- events) form one sequence of their own.
CREATE UNIQUE INDEX customer_events_customer_sequence_uq
    ON customer_events (customer_id, sequence) WHERE customer_id IS NOT NULL;
CREATE UNIQUE INDEX customer_events_system_sequence_uq
    ON customer_events (sequence) WHERE customer_id IS NULL;
DROP INDEX customer_events_customer_seq_idx;

CREATE TABLE consumer_event_receipts (
    receipt_id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    consumer_id               uuid        NOT NULL REFERENCES consumers (consumer_id),
    event_id                  uuid        NOT NULL REFERENCES customer_events (event_id),
    customer_id               uuid,
    event_type                text        NOT NULL,
    received_at               timestamptz NOT NULL DEFAULT now(),
    processing_status         text        NOT NULL
        CHECK (processing_status IN ('received', 'processed', 'failed')),
    processing_failure_reason text,
    UNIQUE (event_id, processing_status)
);

-- Timestamps leave the database in the contract's one format:
-- 2025-10-23T14:34:51.467162Z.
CREATE FUNCTION fintegrate_ts(t timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;
