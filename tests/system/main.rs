//! System tests: the real binaries, the local RabbitMQ and PostgreSQL, an SMTP server and
//! an OTLP receiver started by the test. One binary, one module per behaviour.
//!
//! The fault-injection modules (`broker_outage`, `db_outage`, `smtp_outage`,
//! `crash_recovery`, `retries`, `shutdown_under_load`, `scaling`) each drive a burst of
//! 500 sign-ups through a fault and count the effects. `SOAK_SIGNUPS=5000` makes every
//! burst bigger for an opt-in soak run.
//!
//! `architecture` needs no running system: it checks the workspace's dependency rules
//! from `cargo metadata`. Nor does `asyncapi`: it checks `docs/asyncapi.yaml` against the
//! code and runs the official AsyncAPI CLI on it.

mod architecture;
mod asyncapi;
mod broker_definitions;
mod broker_outage;
mod catalog;
mod compose;
mod compose_tls;
mod contract;
mod crash_recovery;
mod dashboard;
mod db_outage;
mod dead_letter;
mod erasure;
mod idempotency;
mod k8s;
mod least_privilege;
mod load_smoke;
mod one_trace;
mod operations;
mod ordering_at_scale;
mod outbox;
mod personal_data;
mod redelivery;
mod replay;
mod retention;
mod retries;
mod scaling;
mod shutdown_under_load;
mod sign_up_flow;
mod smtp_outage;
mod tls;
