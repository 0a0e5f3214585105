//! Erasing a user: lock the row, then delete the user, their events and idempotency
//! records and write the `user.deleted.v1` event in one statement.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use crate::outbox::OutboxEntry;

/// Where a user stands when an erasure starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureTarget {
    /// The user exists, and is now locked for this transaction; its next event is
    /// number `next_sequence`.
    Present {
        /// The `sequence` the `user.deleted.v1` event takes.
        next_sequence: u64,
    },
    /// The user was erased before.
    AlreadyErased,
    /// No user ever had this id.
    Unknown,
}

/// Locks the user for the rest of the transaction and says where it stands. The lock
/// makes two concurrent erasures of one user take turns: the second finds it erased.
pub async fn lock_for_erasure(
    tx: &mut PgConnection,
    user_id: Uuid,
) -> Result<ErasureTarget, sqlx::Error> {
    async {
        let last: Option<(i64,)> =
            sqlx::query_as("select last_sequence from users where user_id = $1 for update")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((last,)) = last {
            let next_sequence = u64::try_from(last).unwrap_or(0) + 1;
            return Ok(ErasureTarget::Present { next_sequence });
        }
        let erased: Option<(Uuid,)> =
            sqlx::query_as("select user_id from erased_users where user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        Ok(if erased.is_some() {
            ErasureTarget::AlreadyErased
        } else {
            ErasureTarget::Unknown
        })
    }
    .instrument(service_kit::db_span!("SELECT", "users"))
    .await
}

/// Erases a user locked by [`lock_for_erasure`], in one statement: deletes the user row,
/// the user's earlier events from the event log (published or not: a `user.registered`
/// still waiting in the outbox is never sent) and the idempotency records of their
/// sign-up, records the erasure, and writes `event` (the `user.deleted.v1`) to the outbox.
pub async fn erase_user(
    tx: &mut PgConnection,
    user_id: Uuid,
    erased_at: DateTime<Utc>,
    event: &OutboxEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with gone as (delete from users where user_id = $1),
              forgotten_events as (delete from outbox where aggregate_id = $1),
              forgotten_keys as (delete from idempotency where user_id = $1),
              recorded as (insert into erased_users (user_id, erased_at) values ($1, $2))
         insert into outbox
             (event_id, event_type, aggregate_id, payload_sealed, traceparent, tracestate)
         values ($3, $4, $1, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(erased_at)
    .bind(event.event_id)
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(&event.trace.traceparent)
    .bind(&event.trace.tracestate)
    .execute(tx)
    .instrument(service_kit::db_span!("DELETE", "users"))
    .await?;
    Ok(())
}
