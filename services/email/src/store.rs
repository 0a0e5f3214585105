//! SQL for the welcome mails.

use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::db_span;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use crate::mailer::OutgoingMail;

/// A welcome mail as `GET /emails` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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

/// Records the event in the inbox and the mail as pending, in one statement (atomic on its
/// own, one round trip). Returns `false` for a redelivered event: the inbox had it, and
/// nothing was written.
pub async fn insert_pending_once(
    db: &PgPool,
    event_type: &str,
    user_id: Uuid,
    mail: &OutgoingMail,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(service_kit::once_per_event!(
        "insert into welcome_mails (event_id, user_id, recipient, subject, body, message_id)
         select $1, $3, $4, $5, $6, $7 from first_time"
    ))
    .bind(mail.event_id)
    .bind(event_type)
    .bind(user_id)
    .bind(&mail.recipient)
    .bind(&mail.subject)
    .bind(&mail.body)
    .bind(mail.message_id())
    .execute(db)
    .instrument(db_span!("INSERT", "inbox"))
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Locks the mail's row for the duration of the caller's transaction and returns it if it
/// still needs sending. The lock makes two concurrent deliveries of one event take turns:
/// the second finds the row already `sent`.
pub async fn lock_pending(
    tx: &mut PgConnection,
    event_id: Uuid,
) -> Result<Option<OutgoingMail>, sqlx::Error> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "select recipient, subject, body from welcome_mails
         where event_id = $1 and status = 'pending' for update",
    )
    .bind(event_id)
    .fetch_optional(tx)
    .instrument(db_span!("SELECT", "welcome_mails"))
    .await?;
    Ok(row.map(|(recipient, subject, body)| OutgoingMail {
        event_id,
        recipient,
        subject,
        body,
    }))
}

/// Marks the mail sent.
pub async fn mark_sent(tx: &mut PgConnection, event_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update welcome_mails set status = 'sent', sent_at = clock_timestamp() where event_id = $1",
    )
    .bind(event_id)
    .execute(tx)
    .instrument(db_span!("UPDATE", "welcome_mails"))
    .await?;
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
