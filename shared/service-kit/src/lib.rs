//! What every service binary needs and nothing domain-specific: the service skeleton
//! (configuration, app builder, `main` runner, consuming-service wiring), the shutdown
//! signal, the database bootstrap, the consumers' inbox, the operational routes, the HTTP
//! trace context layer, and one error type and one error format (RFC 9457) for every answer.
//!
//! # Layout
//! A service's `main` calls [`runner::serve`] (or [`consumer_service::ConsumerService::main`]),
//! which installs telemetry, builds an [`app::App`] from a [`config::ServiceArgs`] and runs
//! it until [`shutdown::on_signal`] fires.

// The app builder: listener, routes, background tasks, drain.
pub mod app;
// The settings every service shares, parsed with the service's own defaults.
pub mod config;
// The skeleton of a consuming service: all but its handler, store and routes.
pub mod consumer_service;
// `db_span!`: the client span every SQL statement runs in.
pub mod db_span;
// Group commit: concurrent callers' writes share one transaction.
pub mod group_commit;
// One error type for every handler, mapped to a status in one place.
pub mod http_error;
// The inbox: "have I handled this event already?", in the effect's own statement.
pub mod inbox;
/// `Json<T>`: a body extractor whose rejections are [`problem::Problem`] 4xx answers.
pub mod json;
// The OpenAPI document of a service's API, served at `/openapi.json`.
pub mod openapi;
/// `/healthz`, `/readyz`, `/metrics`.
pub mod ops_http;
/// `Path<T>`: path parameters whose rejections are problems naming the parameter.
pub mod path;
// Personal data sealed at rest, and the keyed hashes it is looked up by.
pub mod pii;
/// Create the database if missing, connect, run the embedded migrations.
pub mod postgres;
// RFC 9457 problem details: every error answer, from handlers and from the framework.
pub mod problem;
// Tables that grow with traffic, cut back on a timer in small batches.
pub mod retention;
// The body of every `main`: telemetry, signal, run, flush.
pub mod runner;
// Passwords from files (Docker and Kubernetes secrets), put into their URLs at start.
pub mod secrets;
/// SIGTERM / Ctrl-C → a `CancellationToken` every task watches.
pub mod shutdown;
/// Continue the caller's trace, name the server span, answer with `traceresponse`.
pub mod trace_http;
