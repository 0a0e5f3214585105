//! What a batch's mails came to, event by event: which the SMTP server took, which it
//! refused, and what each delivery reports back to the consume loop.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::mailer::MailError;

/// What happened to one event's mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// Sent by this delivery.
    Now,
    /// Sent before (a redelivery), or by the same event's other delivery in the batch.
    Earlier,
    /// Never: an event of the user with this `sequence` or a later one was applied
    /// before this one arrived: their deletion, or this same sign-up, replayed after its
    /// inbox row expired.
    Never,
}

/// What went wrong while handling one event.
#[derive(Debug, thiserror::Error)]
pub(super) enum WelcomeError {
    /// The batch's transaction failed; the text is shared by every event in it.
    #[error("database: {0}")]
    Database(String),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// What the SMTP server said to each mail of a batch.
#[derive(Debug, Default)]
pub(super) struct Sends {
    /// Accepted.
    pub(super) sent: HashSet<Uuid>,
    /// Refused or not reached, with why.
    pub(super) failed: HashMap<Uuid, MailError>,
}

impl Sends {
    pub(super) fn sent_ids(&self) -> Vec<Uuid> {
        self.sent.iter().copied().collect()
    }

    /// Each position's outcome. An event's first position carries its result; a repeat of
    /// it (one event delivered twice) was handled by the first. An event in `late` came
    /// after its user's deletion. A mail that was not pending had been sent before (or
    /// erased since).
    pub(super) fn outcomes(
        mut self,
        ids: &[Uuid],
        late: &[Uuid],
        recorded: &Result<(), String>,
    ) -> Vec<Result<Sent, WelcomeError>> {
        let mut reported = HashSet::new();
        ids.iter()
            .map(|id| {
                if !reported.insert(*id) {
                    return Ok(Sent::Earlier);
                }
                if late.contains(id) {
                    return Ok(Sent::Never);
                }
                if let Some(error) = self.failed.remove(id) {
                    return Err(WelcomeError::Mail(error));
                }
                if !self.sent.contains(id) {
                    return Ok(Sent::Earlier);
                }
                match recorded {
                    Ok(()) => Ok(Sent::Now),
                    Err(error) => Err(WelcomeError::Database(error.clone())),
                }
            })
            .collect()
    }
}
