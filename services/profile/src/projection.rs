//! The `user.registered.v1` handler: inbox row and profile row in one statement, for all
//! the deliveries in flight at once (a group commit).

use events::{Envelope, Event, UserRegisteredV1};
use messaging::{consumer::Handler, outcome::HandlerOutcome};
use service_kit::{
    db_span,
    group_commit::{BatchWriter, GroupCommit, Submitted},
};
use sqlx::PgPool;

use crate::store::{self, Applied, ProfileChange};

/// Projects registrations into profiles.
#[derive(Debug, Clone)]
pub struct ProfileProjection {
    /// Writes the changes of concurrent deliveries together.
    writes: GroupCommit<ProfileWriter>,
}

impl ProfileProjection {
    /// The projection, with its metric described (and at 0) before the first profile.
    /// `concurrency` is the consumer's prefetch: the most deliveries that can be waiting
    /// to be written at once.
    pub fn new(db: PgPool, concurrency: usize) -> Self {
        metrics::describe_counter!(
            "profiles_created_total",
            "Profiles written by the projection."
        );
        metrics::counter!("profiles_created_total").increment(0);
        Self {
            writes: GroupCommit::start(ProfileWriter { db }, concurrency),
        }
    }
}

impl Handler<UserRegisteredV1> for ProfileProjection {
    async fn handle(&self, event: Envelope<UserRegisteredV1>) -> HandlerOutcome {
        match self.project(event).await {
            Ok(()) => HandlerOutcome::Done,
            // Every database failure here is worth retrying: the event itself was valid.
            Err(reason) => HandlerOutcome::Retry(reason),
        }
    }
}

impl ProfileProjection {
    async fn project(&self, event: Envelope<UserRegisteredV1>) -> Result<(), String> {
        let (event_id, sequence) = (event.id, event.sequence);
        let change = ProfileChange {
            event_id,
            user_id: event.data.user_id,
            display_name: event.data.display_name,
            registered_at: event.data.registered_at,
            sequence: i64::try_from(sequence).unwrap_or(i64::MAX),
            changed_at: event.time,
        };
        let applied = self
            .writes
            .submit(change)
            .await
            .map_err(|error| error.to_string())??;
        match applied {
            Applied::Written => {
                metrics::counter!("profiles_created_total").increment(1);
                tracing::info!(%event_id, "profile written");
            }
            Applied::Stale => tracing::info!(%event_id, sequence, "stale event ignored"),
            Applied::AlreadyApplied => tracing::info!(%event_id, "event already applied"),
        }
        Ok(())
    }
}

/// Applies a batch of changes in one statement. If the database refuses the batch, each
/// change is tried on its own, so that a change it refuses fails alone.
#[derive(Debug)]
struct ProfileWriter {
    db: PgPool,
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
        let event_type = UserRegisteredV1::TYPE;
        let outcomes = match store::apply_batch(&self.db, event_type, &changes).await {
            Ok(applied) => applied.into_iter().map(Ok).collect(),
            // The server refused the statement: one of the changes may be at fault, so
            // each is tried on its own and only that one fails.
            Err(sqlx::Error::Database(_)) if batch_size > 1 => {
                let mut outcomes = Vec::with_capacity(batch_size);
                for change in changes {
                    let single = store::apply_batch(&self.db, event_type, &[change]).await;
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
