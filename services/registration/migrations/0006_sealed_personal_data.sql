-- Personal data sealed at rest (docs/decisions/0014): a copy of this database (a dump, a
-- backup, a stolen disk) shows no address and no name. The service seals them with its
-- key (PII_KEYS) before they reach a statement; the address's keyed hash (PII_LOOKUP_KEY)
-- carries the uniqueness check instead of the address.
--
-- The clear columns stay, nullable, for rows written before this migration: the service
-- seals those at start (and, the same way, re-seals rows under an old key after a key
-- rotation) and empties the clear columns. A later migration drops them.
alter table users
    add column email_hash bytea,
    add column email_sealed bytea,
    add column display_name_sealed bytea,
    alter column email drop not null,
    alter column display_name drop not null;

create unique index users_email_hash_key on users (email_hash);

-- The event log holds each envelope, address and name included.
alter table outbox
    add column payload_sealed bytea,
    alter column payload drop not null;

-- An idempotency record keeps the request's keyed hash (enough to tell a retry from a
-- different request under the same key) and the sealed answer.
alter table idempotency
    add column request_hash bytea,
    add column response_sealed bytea,
    alter column request drop not null;
