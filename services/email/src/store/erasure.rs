//! Erasing a user's mail records on `user.deleted.v1`.

use chrono::{DateTime, Utc};
use service_kit::db_span;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

/// What an erasure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erased {
    /// The user is marked erased and this many of their mail records were deleted.
    Now {
        /// Mail records deleted.
        mails: u64,
    },
    /// The inbox already had the event: a redelivery, nothing to do.
    AlreadyApplied,
}

/// Applies a `user.deleted.v1`: records the event in the inbox and the user as erased,
/// then deletes the records of their mails (address, subject, body), in one transaction.
///
/// Two statements on purpose. The first upserts the user's `known_users` row, and so
/// waits for a welcome mail of the user that is being sent right now (its batch holds the
/// row's lock until it has recorded the mail). The second reads with a snapshot taken
/// after that wait, so it sees, and deletes, the mail that batch just recorded; in one
/// statement its snapshot would predate the wait and miss it.
pub async fn erase_user(
    db: &PgPool,
    event_type: &str,
    event_id: Uuid,
    user_id: Uuid,
    sequence: i64,
    erased_at: DateTime<Utc>,
) -> Result<Erased, sqlx::Error> {
    let mut tx = db.begin().await?;
    let first_time: Option<Uuid> = sqlx::query_scalar(service_kit::once_per_event!(
        batch: "select $2::uuid as event_id, $3::uuid as user_id, $4::int8 as sequence,
                       $5::timestamptz as erased_at, 1 as position",
        effect: ", erased as (
              insert into known_users (user_id, last_sequence, erased_at)
              select user_id, sequence, erased_at from fresh
              on conflict (user_id) do update
                 set last_sequence = greatest(known_users.last_sequence, excluded.last_sequence),
                     erased_at = excluded.erased_at)
          select event_id from fresh"
    ))
    .bind(event_type)
    .bind(event_id)
    .bind(user_id)
    .bind(sequence)
    .bind(erased_at)
    .fetch_optional(&mut *tx)
    .instrument(db_span!("INSERT", "known_users"))
    .await?;
    if first_time.is_none() {
        return Ok(Erased::AlreadyApplied);
    }
    let mails = sqlx::query("delete from welcome_mails where user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .instrument(db_span!("DELETE", "welcome_mails"))
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Erased::Now { mails })
}
