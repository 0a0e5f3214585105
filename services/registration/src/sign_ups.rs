//! Concurrent sign-ups share one statement and one commit: registration's group commit.
//!
//! A sign-up is one statement (the user and its event's outbox row,
//! [`store::insert_users`]), and on its own it would be one commit: under load the commit's
//! WAL flush and round trips cost the database more than everything else a sign-up asks
//! of it. The requests in flight hand their sign-ups to one writer task instead, which
//! writes everything that queued up while its previous batch was committing as the next
//! batch (`service_kit::group_commit`, docs/decisions/0010). Each sign-up keeps its
//! guarantee, its user and its event or neither, and its answer: the 201 is sent after
//! the commit, a taken address is still a 409 for that request alone. With one request
//! at a time a batch is that one request: nothing waits for company.

use std::sync::Arc;

use service_kit::{
    db_span,
    group_commit::{BatchWriter, GroupCommit, Submitted},
};
use sqlx::PgPool;

use crate::store::{self, Inserted, SignUp, StoreError};

/// The write path of `POST /users` without an `Idempotency-Key` (a keyed sign-up also
/// claims its key, in a transaction of its own).
#[derive(Debug, Clone)]
pub struct SignUps {
    writes: GroupCommit<SignUpWriter>,
}

impl SignUps {
    /// Starts the writer. `max_batch` is the most requests handled at once
    /// (`MAX_CONCURRENT_REQUESTS`): more sign-ups can never be waiting.
    pub fn new(db: PgPool, max_batch: usize) -> Self {
        Self {
            writes: GroupCommit::start(SignUpWriter { db }, max_batch),
        }
    }

    /// Writes the sign-up with whatever else is waiting, and returns once it is committed.
    pub async fn insert(&self, sign_up: SignUp) -> Result<(), StoreError> {
        match self.writes.submit(sign_up).await {
            Ok(Ok(inserted)) => inserted.into_result(),
            Ok(Err(error)) => Err(StoreError::Database(error)),
            // sqlx's own word for a background task that went away mid-request.
            Err(_) => Err(sqlx::Error::WorkerCrashed.into()),
        }
    }
}

/// Writes a batch of sign-ups in one statement.
#[derive(Debug)]
struct SignUpWriter {
    db: PgPool,
}

impl BatchWriter for SignUpWriter {
    type Item = SignUp;
    type Outcome = Result<Inserted, Arc<sqlx::Error>>;

    async fn write(&self, submitted: Vec<Submitted<SignUp>>) -> Vec<Self::Outcome> {
        let batch_size = submitted.len();
        let (sign_ups, callers): (Vec<_>, Vec<_>) = submitted
            .into_iter()
            .map(|submitted| (submitted.item, submitted.caller))
            .unzip();
        // One span per request, in its own trace, though the statement is shared.
        let spans: Vec<_> = callers
            .iter()
            .map(|caller| db_span!("INSERT", "users", parent: caller, batch_size: batch_size))
            .collect();
        let outcomes = match store::insert_users(&self.db, &sign_ups).await {
            Ok(inserted) => inserted.into_iter().map(Ok).collect(),
            // The server refused the statement: one of the sign-ups may be at fault, so
            // each is tried on its own and only that one fails.
            Err(sqlx::Error::Database(_)) if batch_size > 1 => {
                let mut outcomes = Vec::with_capacity(batch_size);
                for sign_up in sign_ups {
                    let single = store::insert_users(&self.db, std::slice::from_ref(&sign_up));
                    outcomes.push(match single.await {
                        // One row in, one verdict out.
                        Ok(inserted) => inserted
                            .first()
                            .copied()
                            .ok_or_else(|| Arc::new(sqlx::Error::RowNotFound)),
                        Err(error) => Err(Arc::new(error)),
                    });
                }
                outcomes
            }
            // Unreachable or overloaded: the same answer for all of them (one by one
            // would only multiply the wait).
            Err(error) => vec![Err(Arc::new(error)); batch_size],
        };
        drop(spans);
        outcomes
    }
}
