//! SQL for the welcome mails.

use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::{
    db_span,
    pii::{Column, PiiError, SealedColumn, SealedTable, Sealer},
};
use sqlx::{PgConnection, PgPool, Postgres, Row, postgres::PgArguments};
use tracing::Instrument;
use uuid::Uuid;

use crate::mailer::OutgoingMail;

/// The recipient's sealing context, and its keyed hash's (what `GET /emails?to=` finds).
const RECIPIENT: Column = "welcome_mails.recipient";
/// The subject's sealing context (it names the user).
const SUBJECT: Column = "welcome_mails.subject";
/// The body's sealing context.
const BODY: Column = "welcome_mails.body";

/// The mail records' personal data, sealed at rest (`service_kit::pii`).
pub static WELCOME_MAILS: SealedTable = SealedTable {
    table: "welcome_mails",
    columns: &[
        SealedColumn {
            column: RECIPIENT,
            clear: "recipient",
            sealed: "recipient_sealed",
            hash: Some("recipient_hash"),
        },
        SealedColumn {
            column: SUBJECT,
            clear: "subject",
            sealed: "subject_sealed",
            hash: None,
        },
        SealedColumn {
            column: BODY,
            clear: "body",
            sealed: "body_sealed",
            hash: None,
        },
    ],
};

/// A welcome mail as `GET /emails` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

/// The batch's columns as arrays, in the order the statements below unnest them, the
/// personal data sealed: `$2` event ids, `$3` users, `$4` recipients' keyed hashes, `$5`
/// recipients, `$6` subjects, `$7` bodies, `$8` Message-IDs.
fn bind_mails<'q>(
    query: sqlx::query::Query<'q, Postgres, PgArguments>,
    mails: &[NewMail],
    pii: &Sealer,
) -> Result<sqlx::query::Query<'q, Postgres, PgArguments>, PiiError> {
    fn column<T>(mails: &[NewMail], field: impl Fn(&NewMail) -> T) -> Vec<T> {
        mails.iter().map(field).collect()
    }
    fn sealed(
        mails: &[NewMail],
        pii: &Sealer,
        column: Column,
        field: impl Fn(&OutgoingMail) -> &str,
    ) -> Result<Vec<Vec<u8>>, PiiError> {
        mails
            .iter()
            .map(|new| pii.seal(column, field(&new.mail)))
            .collect()
    }
    Ok(query
        .bind(column(mails, |new| new.mail.event_id))
        .bind(column(mails, |new| new.user_id))
        .bind(column(mails, |new| {
            pii.lookup_hash(RECIPIENT, &new.mail.recipient)
        }))
        .bind(sealed(mails, pii, RECIPIENT, |mail| &mail.recipient)?)
        .bind(sealed(mails, pii, SUBJECT, |mail| &mail.subject)?)
        .bind(sealed(mails, pii, BODY, |mail| &mail.body)?)
        .bind(column(mails, |new| new.mail.message_id())))
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
    pii: &Sealer,
    event_type: &str,
    mails: &[NewMail],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let query = sqlx::query(service_kit::once_per_event!(
        batch: "select * from unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::bytea[],
                                     $6::bytea[], $7::bytea[], $8::text[], $9::int8[])
                with ordinality as b(event_id, user_id, recipient_hash, recipient_sealed,
                                     subject_sealed, body_sealed, message_id, sequence,
                                     position)",
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
                  (event_id, user_id, recipient_hash, recipient_sealed, subject_sealed,
                   body_sealed, message_id)
              select event_id, user_id, recipient_hash, recipient_sealed, subject_sealed,
                     body_sealed, message_id
              from applied)
          select event_id from fresh where event_id not in (select event_id from applied)"
    ))
    .bind(event_type);
    let sequences: Vec<i64> = mails.iter().map(|new| new.sequence).collect();
    let late = bind_mails(query, mails, pii)?
        .bind(sequences)
        .fetch_all(tx)
        .await?;
    late.iter().map(|row| row.try_get("event_id")).collect()
}

/// A pending mail as stored: event id, sealed recipient, subject and body.
type SealedMail = (Uuid, Vec<u8>, Vec<u8>, Vec<u8>);

/// Locks the rows of those mails that still need sending, for the rest of the caller's
/// transaction, and returns them. The lock makes two deliveries of one event take turns:
/// the second finds the row already `sent`. Rows are locked in id order, so two batches
/// cannot deadlock.
pub async fn lock_pending(
    tx: &mut PgConnection,
    pii: &Sealer,
    event_ids: &[Uuid],
) -> Result<Vec<OutgoingMail>, sqlx::Error> {
    let rows: Vec<SealedMail> = sqlx::query_as(
        "select event_id, recipient_sealed, subject_sealed, body_sealed from welcome_mails
         where event_id = any($1) and status = 'pending'
         order by event_id for update",
    )
    .bind(event_ids)
    .fetch_all(tx)
    .await?;
    rows.into_iter()
        .map(|(event_id, recipient, subject, body)| {
            Ok(OutgoingMail {
                event_id,
                recipient: pii.open(RECIPIENT, &recipient)?,
                subject: pii.open(SUBJECT, &subject)?,
                body: pii.open(BODY, &body)?,
            })
        })
        .collect()
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
    pii: &Sealer,
    event_type: &str,
    mails: &[NewMail],
) -> Result<(), sqlx::Error> {
    let query = sqlx::query(
        "with batch as (
             select * from unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::bytea[],
                                  $6::bytea[], $7::bytea[], $8::text[])
             as b(event_id, user_id, recipient_hash, recipient_sealed, subject_sealed,
                  body_sealed, message_id)),
         inbox_rows as (
             insert into inbox (event_id, event_type)
             select distinct event_id, $1 from batch order by event_id
             on conflict (event_id) do nothing)
         insert into welcome_mails
             (event_id, user_id, recipient_hash, recipient_sealed, subject_sealed,
              body_sealed, message_id, status, sent_at)
         select distinct on (event_id)
             event_id, user_id, recipient_hash, recipient_sealed, subject_sealed,
             body_sealed, message_id, 'sent', clock_timestamp()
         from batch order by event_id
         on conflict (event_id) do update
            set status = 'sent', sent_at = coalesce(welcome_mails.sent_at, excluded.sent_at)",
    )
    .bind(event_type);
    bind_mails(query, mails, pii)?.execute(db).await?;
    Ok(())
}

/// A mail record as stored, its personal data sealed.
#[derive(sqlx::FromRow)]
struct StoredMail {
    event_id: Uuid,
    user_id: Uuid,
    recipient_sealed: Vec<u8>,
    subject_sealed: Vec<u8>,
    message_id: String,
    status: String,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

/// The mails to one address (normalised as stored), oldest first: found by the address's
/// keyed hash, then opened.
pub async fn mails_to(
    db: &PgPool,
    pii: &Sealer,
    recipient: &str,
) -> Result<Vec<WelcomeMail>, sqlx::Error> {
    let stored: Vec<StoredMail> = sqlx::query_as(
        "select event_id, user_id, recipient_sealed, subject_sealed, message_id, status,
                created_at, sent_at
         from welcome_mails where recipient_hash = $1 order by created_at",
    )
    .bind(pii.lookup_hash(RECIPIENT, recipient))
    .fetch_all(db)
    .instrument(db_span!("SELECT", "welcome_mails"))
    .await?;
    stored
        .into_iter()
        .map(|mail| {
            Ok(WelcomeMail {
                event_id: mail.event_id,
                user_id: mail.user_id,
                recipient: pii.open(RECIPIENT, &mail.recipient_sealed)?,
                subject: pii.open(SUBJECT, &mail.subject_sealed)?,
                message_id: mail.message_id,
                status: mail.status,
                created_at: mail.created_at,
                sent_at: mail.sent_at,
            })
        })
        .collect()
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
