//! In-process API tests of the profile service: each test builds the app with its own
//! database and broker names (`helpers::spawn_app`) and drives it over HTTP. Building
//! profiles from real events is tested in the workspace's `tests/system`; the store's
//! batch statement is tested here against the app's database (`store`).

mod helpers;
mod openapi;
mod operations;
mod profiles;
mod store;
