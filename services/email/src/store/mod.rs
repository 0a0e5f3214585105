//! SQL for the welcome mails: writing them (here), reading them for `GET /emails`
//! (`read`), erasing a user's (`erasure`).

// Erasing a user's mail records.
mod erasure;
// The mails to one address, for `GET /emails`.
mod read;

use service_kit::pii::{Column, PiiError, SealedColumn, SealedTable, Sealer};
use sqlx::{PgConnection, PgPool, Postgres, Row, postgres::PgArguments};
use uuid::Uuid;

use crate::mailer::OutgoingMail;

pub use erasure::{Erased, erase_user};
pub use read::{WelcomeMail, mails_to};

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
