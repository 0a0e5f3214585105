//! In-process API tests of registration: each test builds the app with its own database
//! and broker names (`helpers::spawn_app`) and drives it over HTTP. The behaviour that
//! crosses services is tested in the workspace's `tests/system`.

mod backpressure;
mod bad_input;
mod erasure;
mod helpers;
mod idempotency;
mod openapi;
mod rate_limit;
mod sealing;
mod sign_ups;
mod trace_context;
mod users;
