-- Erasure (`user.deleted.v1`, docs/decisions/0012): an erased user's row stays as a
-- tombstone with the id, the `sequence` of the deletion and when it happened; the name
-- and the sign-up time are gone. The tombstone is what makes a `user.registered.v1`
-- that arrives after the deletion (a retry, a redrive, a replay) stale: its sequence is
-- lower, so the upsert leaves the row alone.
alter table profiles
    alter column display_name drop not null,
    alter column registered_at drop not null,
    add column erased_at timestamptz;
