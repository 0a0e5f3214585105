//! The "nothing more arrives" check: a marker sign-up sent through the system after the
//! effects a test expects, instead of a sleep that hopes to be long enough.

use std::sync::{Mutex, MutexGuard};

use super::probe::EffectsProbe;

/// A sign-up made only to mark a point in the stream of events (see
/// [`EffectsProbe::pass_marker`]). Its address and user id are its own, so its effects
/// are told apart from the test's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The marker user's id.
    pub user_id: String,
    /// The marker user's address, `marker-…@marker.example.org`.
    pub address: String,
}

/// The markers a system has sent, so that counting ([`EffectsProbe::settle`]) leaves
/// their rows and mails out of what a test asserts on.
#[derive(Debug, Default)]
pub(crate) struct Markers(Mutex<Vec<Marker>>);

impl Markers {
    /// Every marker sent so far.
    pub(crate) fn snapshot(&self) -> Vec<Marker> {
        self.lock().clone()
    }

    /// How many markers have been sent.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn push(&self, marker: Marker) {
        self.lock().push(marker);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Marker>> {
        // A panic while the lock is held can only be a failing test; the list is
        // still whole (every change is a single push).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl EffectsProbe<'_> {
    /// Signs up a fresh marker user and waits until all of its effects are visible: its
    /// profile row, and its welcome mail at the SMTP server with its record `sent`.
    /// Then everything enqueued before the marker has been delivered, and counts taken
    /// afterwards are final for it: a test asserts exact counts ("no duplicate") without
    /// sleeping for a guessed while.
    ///
    /// # Why it works
    ///
    /// A RabbitMQ queue hands out its messages in the order they were enqueued. The
    /// marker's event goes the way every sign-up's does (registration, outbox relay,
    /// exchange, one copy in each consumer's queue) and is published after whatever
    /// the test caused before this call (the relay publishes in outbox order, and the
    /// test's own raw publishes were confirmed by the broker before they returned). So
    /// in each consumer queue it stands behind any earlier message: a duplicate, a
    /// redelivery, a replayed event. Once its effects are visible, each consumer has
    /// been handed every one of those.
    ///
    /// # What it does not guarantee
    ///
    /// - *Handed out is not finished.* A consumer works on up to its prefetch
    ///   ([`crate::system::CONSUMER_PREFETCH`]) deliveries at once, so a message handed
    ///   out just before the marker could still be in its handler when the marker's
    ///   effects appear. The messages this stands guard against are duplicates that the
    ///   inbox turns away with one query, while the marker needs inserts and an SMTP
    ///   conversation, so they finish first in practice; but that is timing, not order.
    /// - *Only what is in a queue is ordered.* A delivery a consumer still holds
    ///   unacked (or one on a connection the broker has not yet declared dead) goes
    ///   back to the queue when it is released, which may be behind the marker; so does
    ///   a message waiting out its delay in a retry queue. Pass the marker once no such
    ///   message is expected ([`EffectsProbe::settle`] first waits until no work or
    ///   delay queue holds one).
    /// - *Only the marker's path.* It orders the two consumer queues behind the
    ///   exchange, nothing that takes another way.
    ///
    /// The marker's rows, mail and event are left out of [`EffectsProbe::settle`]'s
    /// counts; a test that counts rows itself adds one per marker. Fails the test if
    /// the marker's sign-up is refused or its effects do not appear in time.
    pub async fn pass_marker(&self) -> Marker {
        let system = self.system();
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let address = format!("marker-{}@marker.example.org", &tag[..12]);
        let user_id = system.sign_up_and_wait(&address, "Marker").await;
        let marker = Marker { user_id, address };
        system.markers().push(marker.clone());
        assert_eq!(
            system.smtp.messages_to(&marker.address).len(),
            1,
            "the marker {} got exactly one mail",
            marker.address
        );
        marker
    }
}
