-- 001_initial_schema.sql — the first schema of the product: customers, their
-- tags, the event log and the analytics snapshots (then called
-- analytics_customers).

CREATE TABLE customers (
    customer_id uuid        PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    status      text        NOT NULL DEFAULT 'ACTIVE'
                            CHECK (status IN ('ACTIVE', 'INACTIVE')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customer_tags (
    customer_id uuid        NOT NULL
                            REFERENCES customers (customer_id) ON DELETE CASCADE,
    tag_key     text        NOT NULL CHECK (tag_key ~ '^[A-Za-z0-9_.-]{1,64}$'),
    tag_value   text        NOT NULL CHECK (length(tag_value) <= 1024),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, tag_key)
);

-- Events outlive their customer (history), so customer_id has no foreign key.
CREATE TABLE customer_events (
    event_id       uuid        PRIMARY KEY,
    customer_id    uuid,
    event_type     text        NOT NULL,
    source_service text        NOT NULL,
    sequence       bigint      NOT NULL CHECK (sequence > 0),
    payload        json        NOT NULL,
    request_id     text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX customer_events_customer_seq_idx
    ON customer_events (customer_id, sequence);

CREATE TABLE analytics_customers (
    analytics_id        uuid        PRIMARY KEY,
    customer_id         uuid        NOT NULL,
    name                text        NOT NULL,
    status              text        NOT NULL,
    tags                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    tag_count           integer     NOT NULL DEFAULT 0,
    event_count         integer     NOT NULL DEFAULT 0,
    customer_created_at timestamptz NOT NULL,
    customer_updated_at timestamptz NOT NULL,
    snapshot_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX analytics_customers_customer_idx
    ON analytics_customers (customer_id, snapshot_at DESC);
