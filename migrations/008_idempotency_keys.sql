-- 008_idempotency_keys.sql — safe retries (docs/API.md §6,
-- "Safe retries: Idempotency-Key").
--
-- One row per key a consumer sent with a POST, PATCH or DELETE: what the
-- request was (its fingerprint) and the answer it got, written in the same
-- transaction as the change it made, so that a retry gets that answer again
-- instead of making the change twice.
--
-- consumer_id  the calling consumer: keys are scoped per consumer.  No
--              foreign key: its check would take a KEY SHARE lock on the
--              consumer's row in every keyed write, and a consumer is never
--              deleted.
-- key          the header's value, 1-255 visible ASCII characters,
--              case-sensitive.
-- fingerprint  SHA-256 of the method, path, query string and the body (its
--              canonical JSON: sorted keys, compact; a body that is not
--              JSON: its bytes), 32 bytes.
-- status       the HTTP status of the stored answer (2xx or 4xx).  NULL
--              only inside the transaction that is still making it.
-- body         the answer's body, byte for byte as it was sent.
-- created_at   when the key was first used; 24 hours later the key counts as
--              absent, and the relay deletes it (outbox/relay.c).
--
-- Lookups go through the primary key (consumer_id, key); the expiry delete
-- takes the oldest rows through the created_at index, in bounded batches.
CREATE TABLE idempotency_keys (
    consumer_id uuid        NOT NULL,
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,
    status      smallint,
    body        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_id, key),
    CHECK (octet_length(key) BETWEEN 1 AND 255),
    CHECK (octet_length(fingerprint) = 32),
    CHECK (status IS NULL OR status BETWEEN 200 AND 499)
);

CREATE INDEX idempotency_keys_created_at_idx
    ON idempotency_keys (created_at);
