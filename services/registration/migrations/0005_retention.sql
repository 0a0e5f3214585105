-- The cleanup deletes idempotency keys older than IDEMPOTENCY_KEY_RETENTION_HOURS; it
-- finds them by age.
create index idempotency_created on idempotency (created_at);
