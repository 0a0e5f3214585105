//! Email: sends each new user one welcome mail, and shows what it sent.
//!
//! It consumes `user.registered.v1` from its own queue and never calls registration.

/// Settings from flags and environment variables.
pub mod config;
/// `GET /emails?to=`.
pub mod http;
/// The SMTP client and the welcome mail's content.
pub mod mailer;
/// Building and running the app.
pub mod startup;
/// SQL for the welcome mails.
pub mod store;
/// The event handler: accept, send once, record.
pub mod welcome;
