#![doc = include_str!("../README.md")]

/// Bytes + type name → typed event, with an error that says why a message can never succeed.
pub mod decode;
/// The CloudEvents envelope every event travels in.
pub mod envelope;
/// The contract an event type fulfils: its versioned type name and schema.
pub mod event;
/// `user.deleted.v1`: a user was erased.
pub mod user_deleted;
/// `user.registered.v1`: a person signed up.
pub mod user_registered;

pub use decode::{DecodeError, decode};
pub use envelope::Envelope;
pub use event::{DATASCHEMA_PREFIX, Event};
pub use user_deleted::UserDeletedV1;
pub use user_registered::UserRegisteredV1;
