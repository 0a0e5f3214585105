//! SQL for profiles.

use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::db_span;
use sqlx::{PgConnection, PgPool};
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

/// Writes the profile unless a newer event (higher `sequence`) already did: last writer
/// by sequence wins, whatever order the broker delivers in.
pub async fn upsert(
    tx: &mut PgConnection,
    change: &ProfileChange<'_>,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "insert into profiles (user_id, display_name, registered_at, sequence, updated_at)
         values ($1, $2, $3, $4, $5)
         on conflict (user_id) do update
            set display_name = excluded.display_name,
                registered_at = excluded.registered_at,
                sequence = excluded.sequence,
                updated_at = excluded.updated_at,
                projected_at = clock_timestamp()
          where profiles.sequence < excluded.sequence",
    )
    .bind(change.user_id)
    .bind(change.display_name)
    .bind(change.registered_at)
    .bind(i64::try_from(change.sequence).unwrap_or(i64::MAX))
    .bind(change.changed_at)
    .execute(tx)
    .instrument(db_span!("INSERT", "profiles"))
    .await?;
    Ok(result.rows_affected() == 1)
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
