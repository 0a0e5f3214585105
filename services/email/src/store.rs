//! SQL for the welcome mails.

use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::db_span;
use sqlx::{PgConnection, PgPool, Postgres, Row, postgres::PgArguments};
use tracing::Instrument;
use uuid::Uuid;

use crate::mailer::OutgoingMail;

/// A welcome mail as `GET /emails` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WelcomeMail {
    /// The `user.registered.v1` event that caused it.
    pub event_id: Uuid,
    /// The new user.
    pub user_id: Uuid,
    /// Where it went.
    #[serde(rename = "to")]
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// RFC 5322 Message-ID.
    pub message_id: String,
    /// `pending` until the SMTP server accepted it, then `sent`.
    pub status: String,
    /// When the event was accepted.
    pub created_at: DateTime<Utc>,
    /// When the SMTP server accepted the mail.
    pub sent_at: Option<DateTime<Utc>>,
}

/// A welcome mail about to be written, with the user it is for.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// The new user.
    pub user_id: Uuid,
    /// The event's per-user `sequence`: the mail is written only if no newer event of the
    /// user (their deletion) was applied first.
    pub sequence: i64,
    /// The mail; its `event_id` is the inbox key.
    pub mail: OutgoingMail,
}

/// The batch's columns as arrays, in the order the statements below unnest them:
/// `$2` event ids, `$3` users, `$4` recipients, `$5` subjects, `$6` bodies, `$7` Message-IDs.
fn bind_mails<'q>(
    query: sqlx::query::Query<'q, Postgres, PgArguments>,
    mails: &[NewMail],
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    fn column<T>(mails: &[NewMail], field: impl Fn(&NewMail) -> T) -> Vec<T> {
        mails.iter().map(field).collect()
    }
    query
        .bind(column(mails, |new| new.mail.event_id))
        .bind(column(mails, |new| new.user_id))
        .bind(column(mails, |new| new.mail.recipient.clone()))
        .bind(column(mails, |new| new.mail.subject.clone()))
        .bind(column(mails, |new| new.mail.body.clone()))
        .bind(column(mails, |new| new.mail.message_id()))
}

/// Records the events in the inbox and their mails as pending, in one statement, unless a
/// newer event of the same user (their deletion) was applied first. A redelivered event
/// finds its inbox row and writes nothing. Returns the ids of the events that came too
/// late: recorded in the inbox, no mail.
///
/// The upsert of `known_users` takes the users' row locks (in user order, so two batches
/// cannot deadlock) for the rest of the transaction: a deletion of one of these users
/// waits until the mails are sent and recorded, then erases them ([`erase_user`]).
pub async fn insert_pending_once(
    tx: &mut PgConnection,
    event_type: &str,
    mails: &[NewMail],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let query = sqlx::query(service_kit::once_per_event!(
        batch: "select * from unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                     $6::text[], $7::text[], $8::int8[])
                with ordinality as b(event_id, user_id, recipient, subject, body,
                                     message_id, sequence, position)",
        effect: ", current as (
              insert into known_users (user_id, last_sequence)
              select distinct on (user_id) user_id, sequence from fresh
              order by user_id, sequence desc
              on conflict (user_id) do update set last_sequence = excluded.last_sequence
               where known_users.last_sequence < excluded.last_sequence
              returning user_id, last_sequence),
          applied as (
              select fresh.* from fresh join current
                on current.user_id = fresh.user_id and current.last_sequence = fresh.sequence),
          mails as (
              insert into welcome_mails
                  (event_id, user_id, recipient, subject, body, message_id)
              select event_id, user_id, recipient, subject, body, message_id from applied)
          select event_id from fresh where event_id not in (select event_id from applied)"
    ))
    .bind(event_type);
    let sequences: Vec<i64> = mails.iter().map(|new| new.sequence).collect();
    let late = bind_mails(query, mails)
        .bind(sequences)
        .fetch_all(tx)
        .await?;
    late.iter().map(|row| row.try_get("event_id")).collect()
}

/// Locks the rows of those mails that still need sending, for the rest of the caller's
/// transaction, and returns them. The lock makes two deliveries of one event take turns:
/// the second finds the row already `sent`. Rows are locked in id order, so two batches
/// cannot deadlock.
pub async fn lock_pending(
    tx: &mut PgConnection,
    event_ids: &[Uuid],
) -> Result<Vec<OutgoingMail>, sqlx::Error> {
    let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "select event_id, recipient, subject, body from welcome_mails
         where event_id = any($1) and status = 'pending'
         order by event_id for update",
    )
    .bind(event_ids)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(event_id, recipient, subject, body)| OutgoingMail {
            event_id,
            recipient,
            subject,
            body,
        })
        .collect())
}

/// Marks the mails sent.
pub async fn mark_sent(tx: &mut PgConnection, event_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update welcome_mails set status = 'sent', sent_at = clock_timestamp()
         where event_id = any($1)",
    )
    .bind(event_ids)
    .execute(tx)
    .await?;
    Ok(())
}

/// Records mails as sent outside the transaction that sent them, which was lost with its
/// connection after the SMTP server had taken the mails: its inbox and pending rows may be
/// gone with it, so this writes them again, as sent.
pub async fn record_sent(
    db: &PgPool,
    event_type: &str,
    mails: &[NewMail],
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "with batch as (
             select * from unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                  $6::text[], $7::text[])
             as b(event_id, user_id, recipient, subject, body, message_id)),
         inbox_rows as (
             insert into inbox (event_id, event_type)
             select distinct event_id, $1 from batch order by event_id
             on conflict (event_id) do nothing)
         insert into welcome_mails
             (event_id, user_id, recipient, subject, body, message_id, status, sent_at)
         select distinct on (event_id)
             event_id, user_id, recipient, subject, body, message_id, 'sent', clock_timestamp()
         from batch order by event_id
         on conflict (event_id) do update
            set status = 'sent', sent_at = coalesce(welcome_mails.sent_at, excluded.sent_at)",
    )
    .bind(event_type);
    bind_mails(query, mails).execute(db).await?;
    Ok(())
}

/// The mails to one address, oldest first.
pub async fn mails_to(db: &PgPool, recipient: &str) -> Result<Vec<WelcomeMail>, sqlx::Error> {
    sqlx::query_as(
        "select event_id, user_id, recipient, subject, message_id, status, created_at, sent_at
         from welcome_mails where recipient = $1 order by created_at",
    )
    .bind(recipient)
    .fetch_all(db)
    .instrument(db_span!("SELECT", "welcome_mails"))
    .await
}

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
