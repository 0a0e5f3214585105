//! The handlers of `user.registered.v1` (write the profile) and `user.deleted.v1` (replace
//! it with a tombstone): inbox row and profile row in one statement, for all the
//! deliveries of one type in flight at once (a group commit).
//!
//! Both go through the same upsert, which keeps the event with the highest per-user
//! `sequence`: a deletion (sequence 2) that arrives before the registration (sequence 1),
//! or a registration redriven after the deletion, leaves the tombstone in place.

use events::{Envelope, Event, UserDeletedV1, UserRegisteredV1};
use messaging::{
    consumer::Handler,
    outcome::{HandlerOutcome, Skip},
};
use service_kit::{
    db_span,
    group_commit::{BatchWriter, GroupCommit, Submitted},
    pii::Sealer,
};
use sqlx::PgPool;

use crate::store::{self, Applied, ProfileChange, ProfileContent};

/// Projects registrations into profiles, and erasures into tombstones.
#[derive(Debug, Clone)]
pub struct ProfileProjection {
    /// Writes the registrations of concurrent deliveries together.
    registrations: GroupCommit<ProfileWriter>,
    /// Writes the erasures of concurrent deliveries together.
    erasures: GroupCommit<ProfileWriter>,
}

impl ProfileProjection {
    /// The projection, with its metric described (and at 0) before the first profile.
    /// `concurrency` is the consumer's prefetch: the most deliveries that can be waiting
    /// to be written at once.
    pub fn new(db: PgPool, pii: Sealer, concurrency: usize) -> Self {
        metrics::describe_counter!(
            "profiles_created_total",
            "Profiles written by the projection."
        );
        metrics::counter!("profiles_created_total").increment(0);
        metrics::describe_counter!("profiles_erased_total", "Profiles erased by user.deleted.");
        metrics::counter!("profiles_erased_total").increment(0);
        let writer = |event_type| ProfileWriter {
            db: db.clone(),
            pii: pii.clone(),
            event_type,
        };
        Self {
            registrations: GroupCommit::start(writer(UserRegisteredV1::TYPE), concurrency),
            erasures: GroupCommit::start(writer(UserDeletedV1::TYPE), concurrency),
        }
    }
}

impl Handler<UserRegisteredV1> for ProfileProjection {
    async fn handle(&self, event: Envelope<UserRegisteredV1>) -> HandlerOutcome {
        let content = ProfileContent::Shown {
            display_name: event.data.display_name.clone(),
            registered_at: event.data.registered_at,
        };
        let user_id = event.data.user_id;
        let applied = self
            .apply(&self.registrations, &event, user_id, content)
            .await;
        verdict(applied, "profile written", "profiles_created_total")
    }
}

impl Handler<UserDeletedV1> for ProfileProjection {
    async fn handle(&self, event: Envelope<UserDeletedV1>) -> HandlerOutcome {
        let user_id = event.data.user_id;
        let applied = self
            .apply(&self.erasures, &event, user_id, ProfileContent::Erased)
            .await;
        verdict(applied, "profile erased", "profiles_erased_total")
    }
}

impl ProfileProjection {
    /// Submits what `event` says the profile of `user_id` now is.
    async fn apply<E: Event>(
        &self,
        writes: &GroupCommit<ProfileWriter>,
        event: &Envelope<E>,
        user_id: uuid::Uuid,
        content: ProfileContent,
    ) -> Result<(Applied, u64), String> {
        let change = ProfileChange {
            event_id: event.id,
            user_id,
            content,
            sequence: i64::try_from(event.sequence).unwrap_or(i64::MAX),
            changed_at: event.time,
        };
        let applied = writes
            .submit(change)
            .await
            .map_err(|error| error.to_string())??;
        Ok((applied, event.sequence))
    }
}

/// The log line, the metric and the message's fate for one applied event. Every database
/// failure is worth retrying: the event itself was valid.
fn verdict(
    applied: Result<(Applied, u64), String>,
    written: &'static str,
    counter: &'static str,
) -> HandlerOutcome {
    match applied {
        Ok((Applied::Written, _)) => {
            metrics::counter!(counter).increment(1);
            tracing::info!("{written}");
            HandlerOutcome::Done
        }
        Ok((Applied::Stale, sequence)) => {
            tracing::info!(
                sequence,
                "stale event ignored: a newer event of the user came first"
            );
            HandlerOutcome::Skipped(Skip::Stale)
        }
        Ok((Applied::AlreadyApplied, _)) => {
            tracing::info!("event already applied");
            HandlerOutcome::Skipped(Skip::AlreadyApplied)
        }
        Err(reason) => HandlerOutcome::Retry(reason),
    }
}

/// Applies a batch of changes of one event type in one statement. If the database
/// refuses the batch, each change is tried on its own, so that a change it refuses fails
/// alone.
#[derive(Debug)]
struct ProfileWriter {
    db: PgPool,
    /// Seals the names before they are written.
    pii: Sealer,
    /// What the inbox records the events as.
    event_type: &'static str,
}

impl BatchWriter for ProfileWriter {
    type Item = ProfileChange;
    type Outcome = Result<Applied, String>;

    async fn write(&self, submitted: Vec<Submitted<ProfileChange>>) -> Vec<Self::Outcome> {
        let batch_size = submitted.len();
        let (changes, callers): (Vec<_>, Vec<_>) = submitted
            .into_iter()
            .map(|submitted| (submitted.item, submitted.caller))
            .unzip();
        let spans: Vec<_> = callers
            .iter()
            .map(|caller| db_span!("INSERT", "inbox", parent: caller, batch_size: batch_size))
            .collect();
        let event_type = self.event_type;
        let outcomes = match store::apply_batch(&self.db, &self.pii, event_type, &changes).await {
            Ok(applied) => applied.into_iter().map(Ok).collect(),
            // The server refused the statement: one of the changes may be at fault, so
            // each is tried on its own and only that one fails.
            Err(sqlx::Error::Database(_)) if batch_size > 1 => {
                let mut outcomes = Vec::with_capacity(batch_size);
                for change in changes {
                    let single =
                        store::apply_batch(&self.db, &self.pii, event_type, &[change]).await;
                    outcomes.push(match single {
                        Ok(mut applied) => applied.pop().ok_or_else(|| "no result".to_owned()),
                        Err(error) => Err(format!("database: {error}")),
                    });
                }
                outcomes
            }
            // Unreachable or overloaded: the same for every change (one by one would only
            // multiply the wait); each delivery is retried.
            Err(error) => vec![Err(format!("database: {error}")); batch_size],
        };
        drop(spans);
        outcomes
    }
}
