//! `GET /emails?to=`: the mails to one address, found by its keyed hash and opened.

use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::{db_span, pii::Sealer};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use super::{RECIPIENT, SUBJECT};

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
