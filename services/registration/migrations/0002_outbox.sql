-- The transactional outbox: an event is inserted in the same transaction as the user, so
-- either both exist or neither does. The relay publishes unpublished rows with publisher
-- confirms and sets published_at only after the broker confirmed. Rows are kept after
-- publishing: they are the log of every event this service has emitted.
create table outbox (
    -- Global publication order; the relay works through rows in this order.
    position     bigint generated always as identity primary key,
    event_id     uuid not null constraint outbox_event_id_key unique,
    event_type   text not null,
    -- The aggregate (user) the event is about, for per-user queries and ordering.
    aggregate_id uuid not null,
    -- The whole CloudEvents envelope, exactly what goes on the wire.
    payload      jsonb not null,
    -- W3C trace context of the HTTP request that caused the event, so the publish span,
    -- which runs later in the relay, continues that request's trace.
    traceparent  text,
    tracestate   text,
    created_at   timestamptz not null default now(),
    published_at timestamptz
);

-- The relay's query: "unpublished rows in order". Partial, so it stays as small as the
-- backlog however long the log grows.
create index outbox_unpublished on outbox (position) where published_at is null;
