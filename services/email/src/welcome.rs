//! The `user.registered.v1` handler: one welcome mail per event, sent once.
//!
//! 1. In one statement: record the event in the inbox and the mail as `pending`. A
//!    redelivered event finds its inbox row and skips this step.
//! 2. In a second transaction: lock the pending row, send it over SMTP, mark it `sent`.
//!    A row already `sent` means there is nothing to do.
//!
//! The two guards do different jobs: the inbox keeps a redelivery from writing a second
//! pending mail; the row lock and the `sent` status keep two deliveries of one event from
//! both sending it. So a redelivery never sends twice, an SMTP outage only delays the mail
//! (the pending row waits for the retry), and a database failure right after sending is bridged by recording
//! `sent` again on a fresh connection. The one remaining window (the process dies after the
//! SMTP server took the mail but before `sent` is committed) sends it again on redelivery,
//! with the same Message-ID.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
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
    db: PgPool,
    /// The SMTP client.
    mailer: Mailer,
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
    /// The handler, with its metric described (and at 0) before the first mail.
    pub fn new(db: PgPool, mailer: Mailer) -> Self {
        metrics::describe_counter!(
            "welcome_mails_sent_total",
            "Welcome mails the SMTP server accepted."
        );
        metrics::counter!("welcome_mails_sent_total").increment(0);
        Self { db, mailer }
    }

    async fn welcome(&self, event: &Envelope<UserRegisteredV1>) -> Result<(), WelcomeError> {
        self.accept(event).await?;
        self.send_pending(event).await
    }

    /// Step 1: inbox + pending mail, atomically, once per event.
    async fn accept(&self, event: &Envelope<UserRegisteredV1>) -> Result<(), WelcomeError> {
        let mail = OutgoingMail::welcome(event.id, &event.data.email, &event.data.display_name);
        let user_id = event.data.user_id;
        if !store::insert_pending_once(&self.db, UserRegisteredV1::TYPE, user_id, &mail).await? {
            tracing::info!(event_id = %event.id, "event already accepted");
        }
        Ok(())
    }

    /// Step 2: send the pending mail, if it still is pending.
    async fn send_pending(&self, event: &Envelope<UserRegisteredV1>) -> Result<(), WelcomeError> {
        let mut tx = self.db.begin().await?;
        let Some(mail) = store::lock_pending(&mut tx, event.id).await? else {
            return Ok(());
        };
        self.mailer.send(&mail).await?;
        metrics::counter!("welcome_mails_sent_total").increment(1);
        let marked = async {
            store::mark_sent(&mut tx, event.id).await?;
            tx.commit().await
        };
        if let Err(error) = marked.await {
            // The mail is out: losing that fact would send it again on the retry. The
            // transaction is gone with its connection; record it on a fresh one.
            tracing::warn!(error = %error, event_id = %event.id, "could not record the sent mail; retrying");
            self.record_sent(event.id).await?;
        }
        tracing::info!(event_id = %event.id, "welcome mail sent");
        Ok(())
    }

    /// Marks the mail sent outside the lost transaction, retrying for a few seconds (a
    /// database blip). If even that fails the message is retried and the mail is sent
    /// again: the rare duplicate the Message-ID is there for.
    async fn record_sent(&self, event_id: uuid::Uuid) -> Result<(), sqlx::Error> {
        let mark = || async {
            let mut connection = self.db.acquire().await?;
            store::mark_sent(&mut connection, event_id).await
        };
        mark.retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(8),
        )
        .await
    }
}
