-- The inbox: one row per event this service has accepted. Written in the same transaction
-- as the event's effect, so a redelivered event finds its id and changes nothing.
-- Shared by every consuming service (service_kit::inbox); a service's own migrations
-- start at version 2.
create table inbox (
    event_id    uuid primary key,
    event_type  text not null,
    received_at timestamptz not null default now()
);
