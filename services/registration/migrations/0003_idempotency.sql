-- Idempotency-Key support for POST /users: a retried request with the same key gets the
-- first answer again instead of a second user (or a confusing 409).
create table idempotency (
    idempotency_key text primary key,
    -- The request the key was first used with; reusing a key for another request is an
    -- error the client must hear about.
    request         jsonb not null,
    -- Filled in the same transaction as the user, so a stored key always has its answer.
    response_status smallint,
    response_body   jsonb,
    created_at      timestamptz not null default now()
);
