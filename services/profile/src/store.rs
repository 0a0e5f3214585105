//! SQL for profiles.

use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::db_span;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

/// A profile as `GET /profiles/{id}` shows it. The email address is deliberately not part
/// of it: a profile is what other users may see.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Profile {
    /// The user's id, as registration assigned it.
    pub user_id: Uuid,
    /// The name the user chose.
    pub display_name: String,
    /// When the user signed up.
    pub registered_at: DateTime<Utc>,
    /// When the event that last changed the profile happened.
    pub updated_at: DateTime<Utc>,
    /// When this service wrote that change: `projected_at - updated_at` is how long the
    /// event took to get here.
    pub projected_at: DateTime<Utc>,
}

/// What one event says a profile now is.
#[derive(Debug, Clone)]
pub struct ProfileChange<'a> {
    /// Whose profile.
    pub user_id: Uuid,
    /// The name to show.
    pub display_name: &'a str,
    /// When the user signed up.
    pub registered_at: DateTime<Utc>,
    /// The event's per-user sequence number.
    pub sequence: u64,
    /// The event's time.
    pub changed_at: DateTime<Utc>,
}

/// What applying one event did to the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The profile was written.
    Written,
    /// A newer event (higher `sequence`) had already written the profile: this one changes
    /// nothing, whatever order the broker delivered them in.
    Stale,
    /// The inbox already had the event: a redelivery, nothing to do.
    AlreadyApplied,
}

/// Records the event in the inbox and writes the profile unless a newer event already
/// did (last writer by sequence wins), in one statement: atomic on its own, one round trip.
pub async fn apply_once(
    db: &PgPool,
    event_id: Uuid,
    event_type: &str,
    change: &ProfileChange<'_>,
) -> Result<Applied, sqlx::Error> {
    let (first_time, written): (bool, bool) = sqlx::query_as(service_kit::once_per_event!(
        ", written as (
             insert into profiles (user_id, display_name, registered_at, sequence, updated_at)
             select $3, $4, $5, $6, $7 from first_time
             on conflict (user_id) do update
                set display_name = excluded.display_name,
                    registered_at = excluded.registered_at,
                    sequence = excluded.sequence,
                    updated_at = excluded.updated_at,
                    projected_at = clock_timestamp()
              where profiles.sequence < excluded.sequence
             returning user_id)
         select exists (select 1 from first_time), exists (select 1 from written)"
    ))
    .bind(event_id)
    .bind(event_type)
    .bind(change.user_id)
    .bind(change.display_name)
    .bind(change.registered_at)
    .bind(i64::try_from(change.sequence).unwrap_or(i64::MAX))
    .bind(change.changed_at)
    .fetch_one(db)
    .instrument(db_span!("INSERT", "inbox"))
    .await?;
    Ok(match (first_time, written) {
        (false, _) => Applied::AlreadyApplied,
        (true, true) => Applied::Written,
        (true, false) => Applied::Stale,
    })
}

/// Reads one profile.
pub async fn find(db: &PgPool, user_id: Uuid) -> Result<Option<Profile>, sqlx::Error> {
    sqlx::query_as(
        "select user_id, display_name, registered_at, updated_at, projected_at
         from profiles where user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db)
    .instrument(db_span!("SELECT", "profiles"))
    .await
}
