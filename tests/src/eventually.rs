//! Waiting for something the system will do soon: one polling helper for every wait.
//!
//! A system test cannot be told when a consumer has written its row or an exporter has
//! flushed; it can only look again. [`eventually`] looks until the answer is there and
//! *fails the test* when the deadline passes, naming what it waited for and what it saw
//! last, so a slow or broken system never lets a test pass on a stale snapshot. [`poll`]
//! is the same loop without the failure, for the few callers that report a timeout in
//! their own words (settling a burst, diagnosing a service that never reconnected).
//!
//! A probe answers with a [`Check`]: `true`, `Some(value)` or `Ok(value)` when the wait is
//! over; `false`, `None` or `Err(what_was_seen)` when it is not.

use std::{convert::Infallible, fmt, time::Duration};

use tokio::time::Instant;

/// How long a test waits for what a healthy system does in well under a second (a
/// profile row, a mail, a metric): generous, because many debug-build processes share
/// two cores while tests run in parallel. Only a failing test waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often a probe is asked again: often enough that a test does not idle long after
/// the answer is there, seldom enough not to load the services it watches.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A probe's answer: either the wait is over (with a value), or not yet (with, perhaps,
/// what was seen instead, for the failure message). Implemented for `bool`, `Option`
/// and `Result`, so a probe returns whatever reads most naturally.
pub trait Check {
    /// What the wait yields once it is over.
    type Value;
    /// What a probe that is not there yet reports having seen.
    type Seen: fmt::Display;

    /// `Ok` when the wait is over, `Err` with what was seen (if anything) otherwise.
    fn check(self) -> Result<Self::Value, Option<Self::Seen>>;
}

impl Check for bool {
    type Value = ();
    type Seen = Infallible;

    fn check(self) -> Result<(), Option<Infallible>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Check for Option<T> {
    type Value = T;
    type Seen = Infallible;

    fn check(self) -> Result<T, Option<Infallible>> {
        self.ok_or(None)
    }
}

impl<T, E: fmt::Display> Check for Result<T, E> {
    type Value = T;
    type Seen = E;

    fn check(self) -> Result<T, Option<E>> {
        self.map_err(Some)
    }
}

/// Asks `probe` every [`POLL_INTERVAL`] until it says the wait is over, and returns its
/// value; fails the test if `within` passes first, with a message naming `what` was
/// awaited and the last thing the probe saw.
pub async fn eventually<C: Check>(
    what: impl fmt::Display,
    within: Duration,
    probe: impl AsyncFnMut() -> C,
) -> C::Value {
    match poll(within, probe).await {
        Ok(value) => value,
        Err(seen) => give_up(
            &what,
            within,
            seen.as_ref().map(|seen| seen as &dyn fmt::Display),
        ),
    }
}

/// Like [`eventually`], but hands a timeout back to the caller as `Err` with the last
/// thing seen, for callers that explain a timeout themselves. A caller must not ignore
/// the `Err`: a wait that timed out has to fail the test one way or another.
pub async fn poll<C: Check>(
    within: Duration,
    probe: impl AsyncFnMut() -> C,
) -> Result<C::Value, Option<C::Seen>> {
    poll_every(POLL_INTERVAL, within, probe).await
}

/// Like [`poll`], asking every `interval`: for probes that are expensive to ask.
pub async fn poll_every<C: Check>(
    interval: Duration,
    within: Duration,
    mut probe: impl AsyncFnMut() -> C,
) -> Result<C::Value, Option<C::Seen>> {
    let deadline = Instant::now() + within;
    loop {
        let seen = match probe().await.check() {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(seen);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Fails the test because `what` did not happen `within` the time allowed; the one
/// wording of a timeout, shared by [`eventually`] and the event-driven waits of the
/// SMTP and OTLP sinks.
pub fn give_up(what: &dyn fmt::Display, within: Duration, seen: Option<&dyn fmt::Display>) -> ! {
    match seen {
        Some(seen) => panic!("timed out after {within:?} waiting for {what}; last seen: {seen}"),
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe that comes true on its third look ends the wait with its value.
    #[tokio::test]
    async fn eventually_returns_the_value_once_the_probe_is_ready() {
        let mut looks = 0;
        let value = eventually("the third look", Duration::from_secs(5), async || {
            looks += 1;
            (looks >= 3).then_some(looks)
        })
        .await;
        assert_eq!(value, 3);
    }

    /// A probe that never comes true fails the test, saying what was awaited and seen.
    #[tokio::test]
    #[should_panic(expected = "waiting for a miracle; last seen: nothing yet")]
    async fn eventually_fails_the_test_naming_what_it_waited_for() {
        eventually("a miracle", Duration::from_millis(20), async || {
            Err::<(), _>("nothing yet")
        })
        .await;
    }

    /// `poll` hands the timeout back instead, with the last thing seen.
    #[tokio::test]
    async fn poll_hands_a_timeout_back_to_the_caller() {
        let outcome = poll(Duration::from_millis(20), async || false).await;
        assert!(matches!(outcome, Err(None)));
    }
}
