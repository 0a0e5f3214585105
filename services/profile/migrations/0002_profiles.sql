-- The profile read model: built only from events, never from registration's tables.
create table profiles (
    user_id       uuid primary key,
    display_name  text not null,
    registered_at timestamptz not null,
    -- The envelope `sequence` of the event that last wrote this row. An event with a
    -- lower or equal sequence for the same user is stale and changes nothing.
    sequence      bigint not null,
    -- The `time` of the event that last wrote this row (not the wall clock of the write),
    -- so replaying the event log rebuilds exactly the same rows.
    updated_at    timestamptz not null
);
