//! The `user.registered.v1` handler: inbox row and profile row in one transaction.

use events::{Envelope, Event, UserRegisteredV1};
use messaging::{consumer::Handler, outcome::HandlerOutcome};
use sqlx::PgPool;

use crate::store;

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
        let mut tx = self.db.begin().await?;
        if !service_kit::inbox::record_once(&mut tx, event.id, UserRegisteredV1::TYPE).await? {
            tracing::info!(event_id = %event.id, "event already applied");
            return Ok(());
        }
        let change = store::ProfileChange {
            user_id: event.data.user_id,
            display_name: &event.data.display_name,
            registered_at: event.data.registered_at,
            sequence: event.sequence,
            changed_at: event.time,
        };
        let written = store::upsert(&mut tx, &change).await?;
        tx.commit().await?;
        if written {
            metrics::counter!("profiles_created_total").increment(1);
        } else {
            tracing::info!(event_id = %event.id, sequence = event.sequence, "stale event ignored");
        }
        Ok(())
    }
}
