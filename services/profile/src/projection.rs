//! The `user.registered.v1` handler: inbox row and profile row in one statement.

use events::{Envelope, Event, UserRegisteredV1};
use messaging::{consumer::Handler, outcome::HandlerOutcome};
use sqlx::PgPool;

use crate::store::{self, Applied};

/// Projects registrations into profiles.
#[derive(Debug, Clone)]
pub struct ProfileProjection {
    /// The profile service's database.
    db: PgPool,
}

impl ProfileProjection {
    /// The projection, with its metric described (and at 0) before the first profile.
    pub fn new(db: PgPool) -> Self {
        metrics::describe_counter!(
            "profiles_created_total",
            "Profiles written by the projection."
        );
        metrics::counter!("profiles_created_total").increment(0);
        Self { db }
    }
}

impl Handler<UserRegisteredV1> for ProfileProjection {
    async fn handle(&self, event: Envelope<UserRegisteredV1>) -> HandlerOutcome {
        match self.project(&event).await {
            Ok(()) => HandlerOutcome::Done,
            // Every database failure here is worth retrying: the event itself was valid.
            Err(error) => HandlerOutcome::Retry(format!("database: {error}")),
        }
    }
}

impl ProfileProjection {
    async fn project(&self, event: &Envelope<UserRegisteredV1>) -> Result<(), sqlx::Error> {
        let change = store::ProfileChange {
            user_id: event.data.user_id,
            display_name: &event.data.display_name,
            registered_at: event.data.registered_at,
            sequence: event.sequence,
            changed_at: event.time,
        };
        match store::apply_once(&self.db, event.id, UserRegisteredV1::TYPE, &change).await? {
            Applied::Written => metrics::counter!("profiles_created_total").increment(1),
            Applied::Stale => {
                tracing::info!(event_id = %event.id, sequence = event.sequence, "stale event ignored");
            }
            Applied::AlreadyApplied => {
                tracing::info!(event_id = %event.id, "event already applied");
            }
        }
        Ok(())
    }
}
