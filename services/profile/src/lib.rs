//! Profile: a read model of users, built from `user.registered.v1`, served over HTTP.
//!
//! It never reads registration's database; everything it knows came as an event.

/// Settings from flags and environment variables.
pub mod config;
/// `GET /profiles/{user_id}`.
pub mod http;
/// The event handler that projects events into profiles.
pub mod projection;
/// Building and running the app.
pub mod startup;
/// SQL for profiles.
pub mod store;
