//! Reading the effects: the profile (`GET /profiles/{id}`) and the sent welcome mail
//! (`GET /emails?to=`) of every accepted sign-up, through the services' public APIs.
//!
//! The trackers run once the counters (`counters`) say a phase is complete, so normally
//! each look finds its effect: one request per sign-up and effect. The latency comes from
//! the timestamps the services write (`projected_at`, `sent_at`), so when we look changes
//! nothing in the figures. If a look finds nothing yet (the counters were unavailable or
//! gave up), the tracker keeps looking at the *oldest* outstanding ones only: one while
//! that one is not done, then a batch that doubles while everything it finds is done;
//! behind, that is one request per 50 ms.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use indicatif::ProgressBar;
use serde_json::Value;
use tokio::{
    sync::{mpsc::UnboundedReceiver, mpsc::error::TryRecvError, watch},
    time::Instant,
};

use super::send::Accepted;

/// How long a tracker waits before looking again at a sign-up that was not done.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The largest batch a tracker looks at in one go.
const MAX_BATCH: usize = 64;

/// Requests in flight per tracker at most.
const POLL_CONCURRENCY: usize = 8;

/// Which effect a tracker waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// The profile row, `projected_at`.
    Profile,
    /// The welcome mail recorded `sent`, `sent_at`.
    Mail,
}

impl Effect {
    fn bit(self) -> u8 {
        match self {
            Self::Profile => 1,
            Self::Mail => 2,
        }
    }
}

/// Which sign-ups have which effects, for the completion bar: a sign-up is complete when
/// both trackers have seen it.
#[derive(Debug)]
pub(super) struct Board {
    seen: Mutex<HashMap<usize, u8>>,
    bar: ProgressBar,
}

impl Board {
    /// An empty board that advances `bar`.
    pub(super) fn new(bar: ProgressBar) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            bar,
        }
    }

    fn record(&self, index: usize, effect: Effect) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let flags = seen.entry(index).or_default();
        *flags |= effect.bit();
        if *flags == Effect::Profile.bit() | Effect::Mail.bit() {
            self.bar.inc(1);
        }
    }
}

/// What one tracker found.
#[derive(Debug, Default)]
pub(super) struct Tracked {
    /// Sign-up index → when the effect happened, by the service's clock.
    pub(super) at: HashMap<usize, SystemTime>,
    /// Requests made.
    pub(super) requests: usize,
    /// Effects seen without a server timestamp (an older service): their time is when
    /// the tracker saw them, which the polling interval distorts.
    pub(super) estimated: usize,
}

/// An effect seen: when it happened, and whether that time is the poll's (the service
/// gave none) rather than the service's.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: SystemTime,
    estimated: bool,
}

/// Where a tracker looks and what it reports to.
#[derive(Debug, Clone)]
pub(super) struct Tracker {
    /// The HTTP client.
    pub(super) http: reqwest::Client,
    /// Which effect.
    pub(super) effect: Effect,
    /// The service's base URL.
    pub(super) base: String,
    /// Shared with the other tracker.
    pub(super) board: Arc<Board>,
}

impl Tracker {
    /// Tracks every sign-up that arrives on `incoming` until all are done, or until the
    /// deadline that `deadline` announces (once sending is over) has passed.
    pub(super) async fn run(
        self,
        mut incoming: UnboundedReceiver<Arc<Accepted>>,
        deadline: watch::Receiver<Option<Instant>>,
    ) -> Tracked {
        let mut tracked = Tracked::default();
        let mut pending: VecDeque<Arc<Accepted>> = VecDeque::new();
        let mut closed = false;
        let mut batch = 1;
        loop {
            loop {
                match incoming.try_recv() {
                    Ok(accepted) => pending.push_back(accepted),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if pending.is_empty() {
                if closed {
                    return tracked;
                }
                tokio::select! {
                    received = incoming.recv() => match received {
                        Some(accepted) => pending.push_back(accepted),
                        None => closed = true,
                    },
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                }
                continue;
            }
            if deadline.borrow().is_some_and(|at| Instant::now() >= at) {
                return tracked;
            }
            let looked: Vec<Arc<Accepted>> = pending.drain(..batch.min(pending.len())).collect();
            let this = &self;
            let answers: Vec<(Arc<Accepted>, Option<Seen>)> = stream::iter(looked)
                .map(|accepted| async move {
                    let answer = this.look(&accepted).await;
                    (accepted, answer)
                })
                .buffer_unordered(POLL_CONCURRENCY)
                .collect()
                .await;
            tracked.requests += answers.len();
            let mut not_yet = Vec::new();
            for (accepted, answer) in answers {
                match answer {
                    Some(seen) => {
                        tracked.at.insert(accepted.index, seen.at);
                        tracked.estimated += usize::from(seen.estimated);
                        self.board.record(accepted.index, self.effect);
                    }
                    None => not_yet.push(accepted),
                }
            }
            if not_yet.is_empty() {
                batch = (batch * 2).min(MAX_BATCH);
            } else {
                batch = 1;
                not_yet.sort_by_key(|accepted| std::cmp::Reverse(accepted.index));
                for accepted in not_yet {
                    pending.push_front(accepted);
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }

    /// Looks once: the effect, or `None` if it is not
    /// there yet (or the service did not answer, which is the same for a tracker).
    async fn look(&self, accepted: &Accepted) -> Option<Seen> {
        let request = match self.effect {
            Effect::Profile => self
                .http
                .get(format!("{}/profiles/{}", self.base, accepted.user_id)),
            Effect::Mail => self
                .http
                .get(format!("{}/emails", self.base))
                .query(&[("to", accepted.address.as_str())]),
        };
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        let stamp = match self.effect {
            Effect::Profile => Some(&body["projected_at"]),
            Effect::Mail => body
                .as_array()?
                .iter()
                .find(|mail| mail["status"] == "sent")
                .map(|mail| &mail["sent_at"]),
        }?;
        Some(match stamp.as_str().and_then(parse_time) {
            Some(at) => Seen {
                at,
                estimated: false,
            },
            None => Seen {
                at: SystemTime::now(),
                estimated: true,
            },
        })
    }
}

/// An RFC 3339 timestamp as a `SystemTime`.
fn parse_time(text: &str) -> Option<SystemTime> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| SystemTime::from(at.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The services' `chrono` timestamps parse to the same instant.
    #[test]
    fn parses_rfc3339_with_fractions() {
        let at = parse_time("2026-11-25T13:22:44.123456Z").expect("RFC 3339");
        let since = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970");
        assert_eq!(since.subsec_micros(), 123_456);
        assert!(parse_time("yesterday").is_none());
    }
}
