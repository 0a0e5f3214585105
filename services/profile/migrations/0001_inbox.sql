-- The inbox: one row per event this service has accepted. Written in the same transaction
-- as the event's first effect (here: the pending welcome mail), so a redelivered event
-- finds its id and changes nothing.
create table inbox (
    event_id    uuid primary key,
    event_type  text not null,
    received_at timestamptz not null default now()
);
