//! SQL for users and idempotency keys (the outbox has its own module, `crate::outbox`).
//! Runtime-checked queries (`query_as` + `FromRow`): see docs/decisions/0002 for why not
//! the compile-time macros. Each statement runs in a `service_kit::db_span!` client span.

// Erasing a user: lock, then delete in one statement.
mod erasure;
// The `Idempotency-Key` records.
mod idempotency;
// Sealing what is clear, and re-sealing what an older key sealed.
mod sealing;
// Users: the batch insert with their events, and the read-back.
mod users;

use std::sync::Arc;

pub use erasure::{ErasureTarget, erase_user, lock_for_erasure};
pub use idempotency::{
    IdempotencyClaim, claim_idempotency_key, idempotency_keys, save_idempotent_response,
};
pub use sealing::seal_all;
pub use users::{Inserted, SignUp, User, find_user, insert_user, insert_users};

/// Failures of the write path that callers must tell apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The unique constraint on `users.email` fired.
    #[error("email already registered")]
    DuplicateEmail,
    /// Anything else from the database. Shared, because a failed group commit
    /// ([`crate::sign_ups`]) is every caller's failure.
    #[error(transparent)]
    Database(Arc<sqlx::Error>),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

/// Re-sealing at start stopped: a statement failed, or a value does not open.
impl From<service_kit::pii::ResealError> for StoreError {
    fn from(error: service_kit::pii::ResealError) -> Self {
        match error {
            service_kit::pii::ResealError::Database(error) => error.into(),
            service_kit::pii::ResealError::Sealing(error) => error.into(),
        }
    }
}

/// A stored value that does not open (its key was dropped from `PII_KEYS`, or the bytes
/// were altered) is a value the database gave back that cannot be decoded: a 500, with
/// the cause in the log.
impl From<service_kit::pii::PiiError> for StoreError {
    fn from(error: service_kit::pii::PiiError) -> Self {
        sqlx::Error::from(error).into()
    }
}
