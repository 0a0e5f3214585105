//! Sending the sign-ups: `concurrency` workers take the next index, wait for its due
//! time (open loop) and `POST /users`.
//!
//! In an open-loop run a sign-up's clock starts at its *scheduled* time, not when a
//! worker got round to it: if the system (or the generator) falls behind, the wait shows
//! up as latency instead of silently lowering the offered rate (coordinated omission).
//! Each worker keeps its own histogram and tallies, merged at the end, so workers share
//! nothing but the index counter.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde::Deserialize;
use serde_json::json;
use tokio::{sync::mpsc::UnboundedSender, task::JoinSet, time::Instant};

use super::{Plan, report::histogram};

/// One accepted sign-up, as the completion trackers need it.
#[derive(Debug)]
pub(super) struct Accepted {
    /// Its index in the run (addresses and completion are keyed by it).
    pub(super) index: usize,
    /// The id from the `201`.
    pub(super) user_id: String,
    /// The address signed up (lower case, as the email service stores it).
    pub(super) address: String,
    /// When its POST was sent (its scheduled time in an open-loop run), by the wall
    /// clock that the services' timestamps use.
    pub(super) sent: SystemTime,
}

/// Where accepted sign-ups go: each completion tracker, and the completion bar's length.
#[derive(Debug, Clone)]
pub(super) struct Outlets {
    /// One channel per tracker (profile, mail).
    pub(super) trackers: Vec<UnboundedSender<Arc<Accepted>>>,
    /// Counts answered requests.
    pub(super) sent_bar: ProgressBar,
    /// Grows by one per accepted sign-up.
    pub(super) completion_bar: ProgressBar,
}

/// What the sending phase did.
#[derive(Debug)]
pub(super) struct Sent {
    /// Requests sent (answered or failed).
    pub(super) attempted: usize,
    /// Every accepted sign-up.
    pub(super) accepted: Vec<Arc<Accepted>>,
    /// Non-`201` answers by status code, and failures without an answer by kind.
    pub(super) rejected: BTreeMap<String, usize>,
    /// Microseconds from send (scheduled send in an open loop) to the `201`.
    pub(super) post: Histogram<u64>,
    /// The first request's send time.
    pub(super) first_send: Option<SystemTime>,
    /// The last answer's arrival.
    pub(super) last_answer: Option<SystemTime>,
    /// Open loop: the most a request started behind its schedule (a generator or a
    /// system that cannot keep up).
    pub(super) max_lag: Duration,
}

/// `Instant`s to wall-clock times: the services stamp their writes with the wall clock,
/// while the generator measures with the monotonic one.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.wall + at.saturating_duration_since(self.instant)
    }
}

/// The body of a `201`.
#[derive(Deserialize)]
struct Created {
    id: String,
}

/// Sends the sign-ups of `plan` with addresses `<label><index>@load.example.org`.
pub(super) async fn send(
    http: &reqwest::Client,
    plan: &Plan,
    label: &str,
    outlets: Outlets,
) -> Sent {
    let clock = Clock::now();
    let next = Arc::new(AtomicUsize::new(0));
    let urls: Arc<Vec<String>> = Arc::new(
        plan.targets
            .registrations
            .iter()
            .map(|base| format!("{base}/users"))
            .collect(),
    );
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let worker = Worker {
            http: http.clone(),
            plan: plan.clone(),
            urls: urls.clone(),
            label: label.to_owned(),
            next: next.clone(),
            outlets: outlets.clone(),
            clock,
        };
        workers.spawn(worker.run());
    }
    drop(outlets);
    let mut total = Sent::empty();
    while let Some(joined) = workers.join_next().await {
        // A worker does not panic; if one did, its tallies are lost, not the run.
        if let Ok(part) = joined {
            merge(&mut total, part);
        }
    }
    total.accepted.sort_by_key(|accepted| accepted.index);
    total
}

impl Sent {
    fn empty() -> Self {
        Self {
            attempted: 0,
            accepted: Vec::new(),
            rejected: BTreeMap::new(),
            post: histogram(),
            first_send: None,
            last_answer: None,
            max_lag: Duration::ZERO,
        }
    }
}

fn merge(total: &mut Sent, part: Sent) {
    total.attempted += part.attempted;
    total.accepted.extend(part.accepted);
    for (key, count) in part.rejected {
        *total.rejected.entry(key).or_default() += count;
    }
    // Same bounds on both sides, so adding cannot fail.
    let _ = total.post.add(&part.post);
    total.first_send = earliest(total.first_send, part.first_send);
    total.last_answer = total.last_answer.max(part.last_answer);
    total.max_lag = total.max_lag.max(part.max_lag);
}

fn earliest(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One of the `concurrency` senders.
struct Worker {
    http: reqwest::Client,
    plan: Plan,
    /// `POST /users` of each registration instance; sign-up `i` goes to the `i`-th,
    /// round the list.
    urls: Arc<Vec<String>>,
    label: String,
    next: Arc<AtomicUsize>,
    outlets: Outlets,
    clock: Clock,
}

impl Worker {
    async fn run(self) -> Sent {
        let mut tally = Sent::empty();
        let open_loop = self.plan.rate.is_some();
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if !self.plan.includes(index, self.clock.instant.elapsed()) {
                return tally;
            }
            let due = self.clock.instant + self.plan.due(index);
            if open_loop {
                tokio::time::sleep_until(due).await;
            }
            let started = Instant::now();
            let sent_at = if open_loop {
                tally.max_lag = tally.max_lag.max(started - due);
                due
            } else {
                started
            };
            let address = format!("{}{index}@load.example.org", self.label);
            let outcome = self.post(index, &address).await;
            let answered = Instant::now();
            tally.attempted += 1;
            tally.first_send = earliest(tally.first_send, Some(self.clock.wall(sent_at)));
            tally.last_answer = tally.last_answer.max(Some(self.clock.wall(answered)));
            self.outlets.sent_bar.inc(1);
            match outcome {
                Ok(user_id) => {
                    let micros = (answered - sent_at).as_micros();
                    tally
                        .post
                        .saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
                    let accepted = Arc::new(Accepted {
                        index,
                        user_id,
                        address,
                        sent: self.clock.wall(sent_at),
                    });
                    for tracker in &self.outlets.trackers {
                        let _ = tracker.send(accepted.clone());
                    }
                    self.outlets.completion_bar.inc_length(1);
                    tally.accepted.push(accepted);
                }
                Err(reason) => *tally.rejected.entry(reason).or_default() += 1,
            }
        }
    }

    /// One `POST /users`: the new user's id, or why there is none (the status code, or
    /// the kind of failure when there was no answer).
    async fn post(&self, index: usize, address: &str) -> Result<String, String> {
        let body = json!({ "email": address, "display_name": format!("Load user {index}") });
        let url = self
            .urls
            .get(index % self.urls.len().max(1))
            .ok_or_else(|| "no registration instance".to_owned())?;
        let response = self
            .http
            .post(url.as_str())
            .json(&body)
            .send()
            .await
            .map_err(|error| failure(&error))?;
        let status = response.status();
        if status != reqwest::StatusCode::CREATED {
            return Err(status.as_u16().to_string());
        }
        response
            .json::<Created>()
            .await
            .map(|created| created.id)
            .map_err(|_| "201 without an id".to_owned())
    }
}

/// A request that got no answer, by kind.
fn failure(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".to_owned()
    } else if error.is_connect() {
        "connect error".to_owned()
    } else {
        "transport error".to_owned()
    }
}
