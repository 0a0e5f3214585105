//! In-process API tests of the email service: each test builds the app with its own
//! database and broker names (`helpers::spawn_app`) and drives it over HTTP. Sending
//! mail for real events is tested in the workspace's `tests/system`.

mod emails;
mod helpers;
mod openapi;
mod operations;
