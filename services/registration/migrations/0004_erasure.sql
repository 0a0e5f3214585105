-- Erasure: DELETE /users/{id} (docs/decisions/0012). The user's personal data goes in
-- one transaction with the outbox row of their `user.deleted.v1`; what stays is the id.

-- The `sequence` of the user's newest event. A sign-up is event 1; each later event of
-- the user takes the next number, read under the row's lock in the transaction that
-- writes it, so a user's events are numbered without gaps or repeats.
alter table users add column last_sequence bigint not null default 1;

-- The users who asked to be forgotten: the id and when, nothing else. A repeated DELETE
-- is then answered like the first (204) rather than 404.
create table erased_users (
    user_id   uuid primary key,
    erased_at timestamptz not null
);

-- The erasure deletes the user's earlier events from the event log (they hold the
-- address), so that a replay cannot bring it back.
create index outbox_aggregate on outbox (aggregate_id);

-- A sign-up's idempotency record holds the request and the answer, address included:
-- it names its user so that the erasure can delete it.
alter table idempotency add column user_id uuid;
update idempotency set user_id = (response_body ->> 'id')::uuid where response_body ? 'id';
create index idempotency_user on idempotency (user_id);
