-- The inbox's cleanup (INBOX_RETENTION_DAYS) finds expired rows by age.
create index inbox_received_at on inbox (received_at);
