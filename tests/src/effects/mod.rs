//! Counting the real effects of a burst, once the system has settled.
//!
//! The guarantees under test are about effects, not about logs or metrics: every
//! accepted sign-up has exactly one profile row and exactly one mail at the SMTP server,
//! nothing is left in the dead-letter queues after a transient fault, and no message is
//! stuck in a queue. [`EffectsProbe::settle`] waits (generously: many processes share two
//! cores) until the effects are complete and the queues are empty, sends a marker
//! sign-up through the system ([`EffectsProbe::pass_marker`]) so that a late duplicate
//! already on its way has landed, and then counts everything in one [`Effects`], which
//! the test asserts on and prints.
//!
//! - `probe`: [`EffectsProbe`], the queries a test makes (`system.effects()`);
//! - `counter`: one look at everything, as [`Effects`];
//! - `marker`: the "nothing more arrives" check.

mod counter;
mod marker;
mod probe;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    time::Duration,
};

use tokio::time::Instant;

pub(crate) use self::marker::Markers;
pub use self::{marker::Marker, probe::EffectsProbe};

/// How long settling may take for `accepted` sign-ups: a minute, plus a tenth of a
/// second per sign-up (debug binaries, two cores, several tests at once). Only a failing
/// test waits this long.
pub fn settle_timeout(accepted: usize) -> Duration {
    let per_sign_up = u32::try_from(accepted).unwrap_or(u32::MAX);
    Duration::from_secs(60) + Duration::from_millis(100) * per_sign_up
}

/// Everything a burst caused, counted from the databases, the SMTP sink and the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Sign-ups answered `201`.
    pub accepted: usize,
    /// Rows in registration's `users`.
    pub users: i64,
    /// Outbox rows not yet published.
    pub unpublished: i64,
    /// Rows in profile's `profiles`.
    pub profiles: usize,
    /// Distinct `user_id`s among them.
    pub distinct_profiles: usize,
    /// Accepted user ids without a profile row.
    pub missing_profiles: Vec<String>,
    /// Profile rows for user ids that were never accepted.
    pub unexpected_profiles: Vec<String>,
    /// Mails the SMTP sink stored, all of them.
    pub mails: usize,
    /// Accepted addresses without a mail.
    pub unmailed: Vec<String>,
    /// Mails to addresses that were never accepted.
    pub unexpected_mails: Vec<String>,
    /// Addresses with more than one mail, with the `Message-ID` of each.
    pub duplicate_mails: BTreeMap<String, Vec<String>>,
    /// `welcome_mails` rows marked `sent`.
    pub sent_rows: i64,
    /// `welcome_mails` rows still `pending`.
    pub pending_rows: i64,
    /// Messages in each dead-letter queue (all listed, zeros included).
    pub dead_letters: BTreeMap<String, u32>,
    /// Work and delay queues that still hold ready messages, with their counts.
    pub waiting: BTreeMap<String, u32>,
    /// How long settling took.
    pub waited: Duration,
}

impl Effects {
    /// Messages in all dead-letter queues together.
    pub fn dead_lettered(&self) -> u32 {
        self.dead_letters.values().sum()
    }

    /// Mails beyond the first to the same address.
    pub fn duplicates(&self) -> usize {
        self.duplicate_mails
            .values()
            .map(|ids| ids.len().saturating_sub(1))
            .sum()
    }

    /// Asserts the guarantee for every accepted sign-up: one user, its event published,
    /// one profile row, one mail at the SMTP server, its record `sent`, and no message
    /// waiting in a work or delay queue. Dead letters are asserted separately
    /// ([`Effects::assert_no_dead_letters`]).
    pub fn assert_each_sign_up_took_effect_once(&self) {
        self.assert_each_sign_up_took_effect_once_except(&[]);
    }

    /// Like [`Effects::assert_each_sign_up_took_effect_once`], except that the
    /// addresses in `unmailed` must have *no* mail yet (their event is expected in a
    /// dead-letter queue, its record `pending`).
    pub fn assert_each_sign_up_took_effect_once_except(&self, unmailed: &[String]) {
        let accepted = i64::try_from(self.accepted).expect("a burst fits in an i64");
        let held_back = i64::try_from(unmailed.len()).expect("a few addresses");
        assert_eq!(
            self.users, accepted,
            "one user row per accepted sign-up\n{self}"
        );
        assert_eq!(self.unpublished, 0, "every event published\n{self}");
        assert!(
            self.missing_profiles.is_empty() && self.unexpected_profiles.is_empty(),
            "profiles missing: {:?}; profiles for no accepted sign-up: {:?}\n{self}",
            self.missing_profiles,
            self.unexpected_profiles
        );
        assert_eq!(
            (self.profiles, self.distinct_profiles),
            (self.accepted, self.accepted),
            "exactly one profile row per accepted sign-up\n{self}"
        );
        let expected: BTreeSet<&String> = unmailed.iter().collect();
        let actual: BTreeSet<&String> = self.unmailed.iter().collect();
        assert_eq!(
            actual, expected,
            "every accepted address has its mail (except those held back)\n{self}"
        );
        assert!(
            self.unexpected_mails.is_empty(),
            "mails to addresses never accepted: {:?}\n{self}",
            self.unexpected_mails
        );
        assert!(
            self.duplicate_mails.is_empty(),
            "exactly one mail per address; duplicates: {:?}\n{self}",
            self.duplicate_mails
        );
        assert_eq!(
            self.mails,
            self.accepted - unmailed.len(),
            "one mail per accepted sign-up\n{self}"
        );
        assert_eq!(
            (self.sent_rows, self.pending_rows),
            (accepted - held_back, held_back),
            "every mail record `sent` (except those held back)\n{self}"
        );
        assert!(
            self.waiting.is_empty(),
            "messages stuck in queues: {:?}\n{self}",
            self.waiting
        );
    }

    /// Asserts that both dead-letter queues are empty: what a transient fault must leave.
    pub fn assert_no_dead_letters(&self) {
        assert_eq!(
            self.dead_lettered(),
            0,
            "nothing dead-lettered by a transient fault: {:?}\n{self}",
            self.dead_letters
        );
    }

    /// Whether everything accepted has taken effect (apart from `unmailed`, whose events
    /// must have reached a dead-letter queue: then no attempt of theirs is still in
    /// flight) and no work or delay queue holds a message.
    fn is_settled(&self, unmailed: &BTreeSet<String>) -> bool {
        let mailed_expected = self.accepted.saturating_sub(unmailed.len());
        let dead_lettered = usize::try_from(self.dead_lettered()).unwrap_or(usize::MAX);
        self.unpublished == 0
            && dead_lettered >= unmailed.len()
            && self.missing_profiles.is_empty()
            && self
                .unmailed
                .iter()
                .all(|address| unmailed.contains(address))
            && usize::try_from(self.sent_rows).is_ok_and(|sent| sent >= mailed_expected)
            && self.waiting.is_empty()
    }
}

impl fmt::Display for Effects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} users={} unpublished={} profiles={} (distinct {}, missing {}, \
             unexpected {}) mails={} (unmailed {}, duplicates {}, unexpected {}) \
             sent_rows={} pending_rows={} dead_letters={:?} waiting={:?} settled_in={:.1?}",
            self.accepted,
            self.users,
            self.unpublished,
            self.profiles,
            self.distinct_profiles,
            self.missing_profiles.len(),
            self.unexpected_profiles.len(),
            self.mails,
            self.unmailed.len(),
            self.duplicates(),
            self.unexpected_mails.len(),
            self.sent_rows,
            self.pending_rows,
            self.dead_letters,
            self.waiting,
            self.waited,
        )
    }
}

/// Prints one line about a fault test: what the burst achieved, what the effects were and
/// how long it all took. Shown by `cargo test -- --nocapture` (and on failure), so a run
/// documents the counts it asserted on.
pub fn report(
    test: &str,
    outcome: &crate::burst::BurstOutcome,
    effects: &Effects,
    started: Instant,
) {
    println!(
        "{test}: burst accepted {} in {:.1?} ({} requests retried); {effects}; test took {:.1?}",
        outcome.accepted.len(),
        outcome.elapsed,
        outcome.retried_requests,
        started.elapsed()
    );
}
