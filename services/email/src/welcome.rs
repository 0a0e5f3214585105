//! The `user.registered.v1` handler: one welcome mail per event, sent once.
//!
//! 1. In one transaction: record the event in the inbox and the mail as `pending`. A
//!    redelivered event finds its inbox row and skips this step.
//! 2. In a second transaction: lock the pending row, send it over SMTP, mark it `sent`.
//!    A row already `sent` means there is nothing to do.
//!
//! So a redelivery never sends twice, an SMTP outage only delays the mail (the pending row
//! waits for the retry), and the one remaining window (a crash after the SMTP server took
//! the mail but before `sent` is committed) sends it again with the same Message-ID.

use events::{Envelope, Event, UserRegisteredV1};
use messaging::{consumer::Handler, outcome::HandlerOutcome};
use sqlx::PgPool;

use crate::{
    mailer::{MailError, Mailer, OutgoingMail},
    store,
};

/// Sends welcome mails.
#[derive(Debug, Clone)]
pub struct WelcomeHandler {
    /// The email service's database.
    pub db: PgPool,
    /// The SMTP client.
    pub mailer: Mailer,
}

/// What went wrong while handling one event.
#[derive(Debug, thiserror::Error)]
enum WelcomeError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl Handler<UserRegisteredV1> for WelcomeHandler {
    async fn handle(&self, event: Envelope<UserRegisteredV1>) -> HandlerOutcome {
        match self.welcome(&event).await {
            Ok(()) => HandlerOutcome::Done,
            Err(WelcomeError::Mail(error @ MailError::Permanent(_))) => {
                HandlerOutcome::Reject(error.to_string())
            }
            Err(error) => HandlerOutcome::Retry(error.to_string()),
        }
    }
}

impl WelcomeHandler {
    async fn welcome(&self, event: &Envelope<UserRegisteredV1>) -> Result<(), WelcomeError> {
        self.accept(event).await?;
        self.send_pending(event).await
    }

    /// Step 1: inbox + pending mail, atomically, once per event.
    async fn accept(&self, event: &Envelope<UserRegisteredV1>) -> Result<(), WelcomeError> {
        let mut tx = self.db.begin().await?;
        if service_kit::inbox::record_once(&mut tx, event.id, UserRegisteredV1::TYPE).await? {
            let mail = OutgoingMail::welcome(event.id, &event.data.email, &event.data.display_name);
            store::insert_pending(&mut tx, event.data.user_id, &mail).await?;
        } else {
            tracing::info!(event_id = %event.id, "event already accepted");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Step 2: send the pending mail, if it still is pending.
    async fn send_pending(&self, event: &Envelope<UserRegisteredV1>) -> Result<(), WelcomeError> {
        let mut tx = self.db.begin().await?;
        let Some(mail) = store::lock_pending(&mut tx, event.id).await? else {
            return Ok(());
        };
        self.mailer.send(&mail).await?;
        store::mark_sent(&mut tx, event.id).await?;
        tx.commit().await?;
        metrics::counter!("welcome_mails_sent_total").increment(1);
        tracing::info!(event_id = %event.id, "welcome mail sent");
        Ok(())
    }
}
