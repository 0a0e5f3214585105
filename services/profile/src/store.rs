//! SQL for profiles.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
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
    /// When this read model last changed the profile.
    pub updated_at: DateTime<Utc>,
}

/// Writes the profile unless a newer event (higher `sequence`) already did: last writer
/// by sequence wins, whatever order the broker delivers in.
pub async fn upsert(
    tx: &mut PgConnection,
    user_id: Uuid,
    display_name: &str,
    registered_at: DateTime<Utc>,
    sequence: u64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "insert into profiles (user_id, display_name, registered_at, sequence)
         values ($1, $2, $3, $4)
         on conflict (user_id) do update
            set display_name = excluded.display_name,
                registered_at = excluded.registered_at,
                sequence = excluded.sequence,
                updated_at = now()
          where profiles.sequence < excluded.sequence",
    )
    .bind(user_id)
    .bind(display_name)
    .bind(registered_at)
    .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
    .execute(tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Reads one profile.
pub async fn find(db: &PgPool, user_id: Uuid) -> Result<Option<Profile>, sqlx::Error> {
    sqlx::query_as(
        "select user_id, display_name, registered_at, updated_at from profiles where user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
}
