//! What every service binary needs and nothing domain-specific: the shutdown signal, the
//! database bootstrap, the consumers' inbox, the operational routes, the HTTP trace
//! context layer, the JSON extractor and the shared error body.

/// The JSON error body all three services answer with.
pub mod error_body;
/// The inbox: "have I handled this event already?", inside the effect's transaction.
pub mod inbox;
/// `Json<T>`: a body extractor whose rejections are [`error_body::ErrorBody`] 4xx answers.
pub mod json;
/// `/healthz`, `/readyz`, `/metrics`.
pub mod ops_http;
/// Create the database if missing, connect, run the embedded migrations.
pub mod postgres;
/// Serving an axum router until shutdown.
pub mod server;
/// SIGTERM / Ctrl-C → a `CancellationToken` every task watches.
pub mod shutdown;
/// Continue the caller's trace, name the server span, answer with `traceresponse`.
pub mod trace_http;
