//! The `user.deleted.v1` handler: the user asked to be forgotten, so the records of their
//! mails (address, subject, body) go, and only the user's id stays, marked erased, with
//! the inbox entries of their events. A welcome mail already handed to the SMTP server
//! cannot be called back; one that is being sent when the deletion arrives is sent, then
//! its record erased; a `user.registered.v1` that arrives after the deletion sends nothing
//! (`store::insert_pending_once`).

use events::{Envelope, Event, UserDeletedV1};
use messaging::{
    consumer::Handler,
    outcome::{HandlerOutcome, Skip},
};
use sqlx::PgPool;

use crate::store::{self, Erased};

/// Erases users' mail records.
#[derive(Debug, Clone)]
pub struct ErasureHandler {
    db: PgPool,
}

impl ErasureHandler {
    /// The handler, with its metric described (and at 0) before the first erasure.
    pub fn new(db: PgPool) -> Self {
        metrics::describe_counter!(
            "users_erased_total",
            "Users whose mail records were erased on user.deleted."
        );
        metrics::counter!("users_erased_total").increment(0);
        Self { db }
    }
}

impl Handler<UserDeletedV1> for ErasureHandler {
    /// One transaction per event, no group commit: erasures are rare, and each waits for
    /// a mail of its user that may be being sent.
    async fn handle(&self, event: Envelope<UserDeletedV1>) -> HandlerOutcome {
        let erased = store::erase_user(
            &self.db,
            UserDeletedV1::TYPE,
            event.id,
            event.data.user_id,
            i64::try_from(event.sequence).unwrap_or(i64::MAX),
            event.data.deleted_at,
        )
        .await;
        match erased {
            Ok(Erased::Now { mails }) => {
                metrics::counter!("users_erased_total").increment(1);
                tracing::info!(mails, "user erased");
                HandlerOutcome::Done
            }
            Ok(Erased::AlreadyApplied) => {
                tracing::info!("event already applied");
                HandlerOutcome::Skipped(Skip::AlreadyApplied)
            }
            // The event is valid; the database will be back.
            Err(error) => HandlerOutcome::Retry(format!("database: {error}")),
        }
    }
}
