-- When this service last wrote the row (the wall clock of the write, unlike `updated_at`,
-- which is the event's time). `GET /profiles/{id}` shows it, so a client or the load
-- generator can see how long an event took to reach the read model without polling for it.
alter table profiles add column projected_at timestamptz not null default clock_timestamp();
