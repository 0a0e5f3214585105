//! The `user.registered.v1` handler: one welcome mail per event, sent once.
//!
//! The deliveries in flight at once are handled together (a group commit, see
//! `service_kit::group_commit`), in one transaction per batch:
//!
//! 1. record each event in the inbox and its mail as `pending`; a redelivered event finds
//!    its inbox row and writes nothing, and one that comes after its user's deletion
//!    (`crate::erasure`) writes no mail;
//! 2. lock the batch's rows that are still `pending` (a row already `sent` means there is
//!    nothing to do);
//! 3. send those mails over SMTP, concurrently;
//! 4. mark the ones the server accepted `sent`, and commit.
//!
//! The two guards do different jobs: the inbox keeps a redelivery from writing a second
//! pending mail; the row lock and the `sent` status keep two deliveries of one event from
//! both sending it. A mail the server refused stays `pending` (committed with the rest)
//! and its delivery is retried, so an SMTP outage only delays mail. If the commit fails
//! after the server took mails, they are recorded as `sent` again on a fresh connection.
//! The one remaining window (the process dies after the SMTP server took a mail but before
//! `sent` is committed) sends it again on redelivery, with the same Message-ID.

// What a batch's mails came to, event by event.
mod outcome;

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use events::{Envelope, Event, UserRegisteredV1};
use futures_util::future::join_all;
use messaging::{
    consumer::Handler,
    outcome::{HandlerOutcome, Skip},
};
use service_kit::{
    db_span,
    group_commit::{BatchWriter, GroupCommit, Submitted},
    pii::Sealer,
};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    mailer::{MailError, Mailer, OutgoingMail},
    store::{self, NewMail},
};

use outcome::{Sends, Sent, WelcomeError};

/// Sends welcome mails.
#[derive(Debug, Clone)]
pub struct WelcomeHandler {
    /// Sends the mails of concurrent deliveries together.
    sends: GroupCommit<WelcomeWriter>,
}

impl Handler<UserRegisteredV1> for WelcomeHandler {
    async fn handle(&self, event: Envelope<UserRegisteredV1>) -> HandlerOutcome {
        let event_id = event.id;
        let new = NewMail {
            user_id: event.data.user_id,
            sequence: i64::try_from(event.sequence).unwrap_or(i64::MAX),
            mail: OutgoingMail::welcome(event_id, &event.data.email, &event.data.display_name),
        };
        let sent = match self.sends.submit(new).await {
            Ok(sent) => sent,
            Err(gone) => return HandlerOutcome::Retry(gone.to_string()),
        };
        match sent {
            Ok(Sent::Now) => {
                metrics::counter!("welcome_mails_sent_total").increment(1);
                tracing::info!(%event_id, "welcome mail sent");
                HandlerOutcome::Done
            }
            Ok(Sent::Earlier) => {
                tracing::info!(%event_id, "welcome mail already sent");
                HandlerOutcome::Skipped(Skip::AlreadyApplied)
            }
            Ok(Sent::Never) => {
                tracing::info!(
                    %event_id,
                    "no welcome mail: this or a later event of the user was applied first"
                );
                HandlerOutcome::Skipped(Skip::Stale)
            }
            Err(WelcomeError::Mail(error @ MailError::Permanent(_))) => {
                HandlerOutcome::Reject(error.to_string())
            }
            Err(error) => HandlerOutcome::Retry(error.to_string()),
        }
    }
}

impl WelcomeHandler {
    /// The handler, with its metric described (and at 0) before the first mail.
    /// `concurrency` is the consumer's prefetch: the most deliveries that can be waiting
    /// to be sent at once.
    pub fn new(db: PgPool, pii: Sealer, mailer: Mailer, concurrency: usize) -> Self {
        metrics::describe_counter!(
            "welcome_mails_sent_total",
            "Welcome mails the SMTP server accepted."
        );
        metrics::counter!("welcome_mails_sent_total").increment(0);
        metrics::describe_counter!(
            "welcome_mails_recorded_again_total",
            "Sent mails whose transaction failed after the send, recorded as sent on a fresh connection."
        );
        metrics::counter!("welcome_mails_recorded_again_total").increment(0);
        Self {
            sends: GroupCommit::start(WelcomeWriter { db, mailer, pii }, concurrency),
        }
    }
}

/// Sends a batch of welcome mails in one transaction (module docs). If the database
/// refuses the batch before anything was sent, each mail is tried on its own, so that one
/// it refuses fails alone.
#[derive(Debug)]
struct WelcomeWriter {
    db: PgPool,
    mailer: Mailer,
    /// Seals the mails' personal data before it is written, opens it to send.
    pii: Sealer,
}

impl BatchWriter for WelcomeWriter {
    type Item = NewMail;
    type Outcome = Result<Sent, WelcomeError>;

    async fn write(&self, batch: Vec<Submitted<NewMail>>) -> Vec<Self::Outcome> {
        match self.send_batch(&batch).await {
            Ok(outcomes) => outcomes,
            // The server refused a statement: one of the mails may be at fault, so each is
            // tried on its own and only that one fails.
            Err(sqlx::Error::Database(_)) if batch.len() > 1 => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for submitted in batch {
                    let single = self.send_batch(std::slice::from_ref(&submitted)).await;
                    outcomes.push(match single {
                        Ok(mut outcome) => outcome
                            .pop()
                            .unwrap_or(Err(WelcomeError::Database("no result".to_owned()))),
                        Err(error) => Err(WelcomeError::Database(error.to_string())),
                    });
                }
                outcomes
            }
            // Unreachable or overloaded: the same for every mail (one by one would only
            // multiply the wait); each delivery is retried.
            Err(error) => {
                let reason = error.to_string();
                (0..batch.len())
                    .map(|_| Err(WelcomeError::Database(reason.clone())))
                    .collect()
            }
        }
    }
}

impl WelcomeWriter {
    /// Steps 1 to 4 for one batch. `Err` only if nothing was sent.
    async fn send_batch(
        &self,
        batch: &[Submitted<NewMail>],
    ) -> Result<Vec<Result<Sent, WelcomeError>>, sqlx::Error> {
        let mails: Vec<NewMail> = batch.iter().map(|s| s.item.clone()).collect();
        let ids: Vec<Uuid> = mails.iter().map(|new| new.mail.event_id).collect();
        let spans = CallerSpans(batch);

        let mut tx = self.db.begin().await?;
        let insert = spans
            .each(|caller, size| db_span!("INSERT", "inbox", parent: caller, batch_size: size));
        let late =
            store::insert_pending_once(&mut tx, &self.pii, UserRegisteredV1::TYPE, &mails).await?;
        drop(insert);
        let lock = spans.each(
            |caller, size| db_span!("SELECT", "welcome_mails", parent: caller, batch_size: size),
        );
        let pending = store::lock_pending(&mut tx, &self.pii, &ids).await?;
        drop(lock);

        let sends = self.send_all(&pending, &spans).await;

        let update = spans.each(
            |caller, size| db_span!("UPDATE", "welcome_mails", parent: caller, batch_size: size),
        );
        let recorded = async {
            store::mark_sent(&mut tx, &sends.sent_ids()).await?;
            tx.commit().await
        };
        let recorded = match recorded.await {
            Ok(()) => Ok(()),
            Err(error) => {
                // The mails are out: losing that fact would send them again on the retry.
                // The transaction is gone with its connection; record them on a fresh one.
                tracing::warn!(%error, mails = sends.sent.len(), "could not record the sent mails; retrying");
                let out: Vec<NewMail> = mails
                    .iter()
                    .filter(|new| sends.sent.contains(&new.mail.event_id))
                    .cloned()
                    .collect();
                metrics::counter!("welcome_mails_recorded_again_total")
                    .increment(sends.sent.len() as u64);
                self.record_sent(&out)
                    .await
                    .map_err(|error| error.to_string())
            }
        };
        drop(update);
        Ok(sends.outcomes(&ids, &late, &recorded))
    }

    /// Step 3: hands the locked mails to the SMTP server, concurrently, each in its
    /// caller's trace.
    async fn send_all(&self, pending: &[OutgoingMail], spans: &CallerSpans<'_>) -> Sends {
        let sends = pending
            .iter()
            .map(|mail| self.mailer.send(mail).instrument(spans.of(mail.event_id)));
        let mut result = Sends::default();
        for (mail, sent) in pending.iter().zip(join_all(sends).await) {
            match sent {
                Ok(()) => {
                    result.sent.insert(mail.event_id);
                }
                Err(error) => {
                    result.failed.insert(mail.event_id, error);
                }
            }
        }
        result
    }

    /// Records mails as sent outside the lost transaction, retrying for a few seconds (a
    /// database blip). If even that fails the messages are retried and the mails sent
    /// again: the rare duplicate the Message-ID is there for.
    async fn record_sent(&self, mails: &[NewMail]) -> Result<(), sqlx::Error> {
        let record = || store::record_sent(&self.db, &self.pii, UserRegisteredV1::TYPE, mails);
        record
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(2))
                    .with_max_times(8),
            )
            .await
    }
}

/// The spans of a batch's callers: one span per caller for each statement, so each event's
/// trace shows its own `INSERT inbox` and `smtp send`.
struct CallerSpans<'a>(&'a [Submitted<NewMail>]);

impl CallerSpans<'_> {
    /// One span per caller, made by `span` from the caller's span and the batch size.
    fn each(&self, span: impl Fn(&tracing::Span, usize) -> tracing::Span) -> Vec<tracing::Span> {
        self.0
            .iter()
            .map(|s| span(&s.caller, self.0.len()))
            .collect()
    }

    /// The span of the (first) caller that submitted `event_id`.
    fn of(&self, event_id: Uuid) -> tracing::Span {
        self.0
            .iter()
            .find(|s| s.item.mail.event_id == event_id)
            .map_or_else(tracing::Span::none, |s| s.caller.clone())
    }
}
