//! A burst of sign-ups: many `POST /users` at once, each retried until it is accepted.
//!
//! Fault-injection tests need load while they break things, and a precise answer to
//! "which sign-ups were accepted?", because that is what every effect is counted
//! against. A sign-up counts as accepted once a `201` came back. A request that failed
//! in a way that may or may not have committed (a `5xx`, a reset connection, a timeout)
//! is retried after a short pause with the same `Idempotency-Key`, so registration
//! answers the retry with the first `201` instead of creating a second user or a `409`.
//! Retrying until accepted makes "accepted" equal "attempted" in a test that passes, and
//! anything else is reported, not hidden.
//!
//! A burst is paced ([`BurstPlan`]) so that it lasts long enough for faults to strike
//! while sign-ups, publishing and consuming all go on. It runs on its own tasks so that
//! the test can cut connections, kill and restart processes meanwhile; the test waits
//! for milestones with [`Burst::wait_until_accepted`] and collects the
//! [`BurstOutcome`] with [`Burst::finish`].

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinSet, time::Instant};

/// Sign-ups per burst unless [`SOAK_VARIABLE`] says otherwise: enough to have many
/// messages in flight at every fault, small enough for the CI suite's time budget.
pub const DEFAULT_SIGNUPS: usize = 500;

/// The variable that makes every burst bigger for an opt-in soak run, e.g.
/// `SOAK_SIGNUPS=5000 cargo test -p system-tests --test system`.
pub const SOAK_VARIABLE: &str = "SOAK_SIGNUPS";

/// Requests in flight at once: enough to keep every service busy (the consumers'
/// prefetch is 16), few enough not to trip registration's load shedding.
pub const DEFAULT_CONCURRENCY: usize = 24;

/// Sign-ups started per second by [`BurstPlan::standard`]. Registration alone takes
/// several hundred a second, the consumers far fewer; at this pace the sign-ups, the
/// relay's publishing and the consumers' work all overlap for the whole burst (about ten
/// seconds for 500), so a fault injected at any milestone finds messages in every stage.
pub const DEFAULT_PER_SECOND: u32 = 50;

/// How long one request may take before it counts as failed (and is retried). Longer
/// than registration's database acquire timeout (5 s), so a slow 503 is seen as such.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one sign-up is retried before the burst gives up on it. Longer than any
/// outage a test injects; a sign-up given up on is reported in
/// [`BurstOutcome::abandoned`], which fails [`BurstOutcome::assert_all_accepted`].
const SIGN_UP_PATIENCE: Duration = Duration::from_secs(180);

/// The pause before the first retry of a failed request; doubled up to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The longest pause between two tries of one sign-up.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How many sign-ups a burst makes: [`SOAK_VARIABLE`] if it is set to a number, else
/// [`DEFAULT_SIGNUPS`].
pub fn burst_size() -> usize {
    std::env::var(SOAK_VARIABLE)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .filter(|count| *count > 0)
        .unwrap_or(DEFAULT_SIGNUPS)
}

/// The address of the `index`-th sign-up of a burst; already in the normalised form
/// (lower case) that registration stores and the email service sends to.
pub fn address(index: usize) -> String {
    format!("user{index:05}@burst.example.org")
}

/// How many sign-ups a burst makes, and how fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstPlan {
    /// Sign-ups in all: [`address`]`(0..count)`.
    pub count: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Sign-ups started per second at most; `None` for as fast as the concurrency
    /// allows.
    pub per_second: Option<u32>,
}

impl BurstPlan {
    /// [`burst_size`] sign-ups, [`DEFAULT_CONCURRENCY`] at a time, paced at
    /// [`DEFAULT_PER_SECOND`].
    pub fn standard() -> Self {
        Self {
            count: burst_size(),
            concurrency: DEFAULT_CONCURRENCY,
            per_second: Some(DEFAULT_PER_SECOND),
        }
    }

    /// How long a test may wait for a milestone of this burst: the time the pacing
    /// alone takes, plus a minute for start-up, retries and a busy machine.
    pub fn patience(&self) -> Duration {
        self.start_of(self.count) + Duration::from_secs(60)
    }

    /// When sign-up `index` may start, counted from the start of the burst.
    fn start_of(&self, index: usize) -> Duration {
        match self.per_second {
            Some(rate) if rate > 0 => {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                Duration::from_secs(1) * index / rate
            }
            _ => Duration::ZERO,
        }
    }
}

/// Where a burst sends its requests. Owned (no borrow of the
/// [`crate::system::TestSystem`]), so the burst can run while the test mutates the
/// system (kills and restarts processes).
#[derive(Debug, Clone)]
pub struct BurstTarget {
    http: reqwest::Client,
    /// Base URLs of the registration instances; retries rotate through them, so a
    /// burst keeps going while one instance is stopped.
    registrations: Vec<String>,
}

impl BurstTarget {
    /// A target with its own HTTP client (with a request timeout, so a request on a
    /// connection that a fault left hanging is retried rather than waited for).
    pub fn new(registrations: Vec<String>) -> Self {
        assert!(
            !registrations.is_empty(),
            "a burst needs a registration instance"
        );
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("a reqwest client with a timeout builds");
        Self {
            http,
            registrations,
        }
    }
}

/// A sign-up that got a definitive answer other than `201`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The address that was signed up.
    pub address: String,
    /// The HTTP status.
    pub status: u16,
    /// The response body, for the assertion message.
    pub body: String,
}

/// What a burst achieved.
#[derive(Debug, Clone, Default)]
pub struct BurstOutcome {
    /// Every accepted sign-up: address → user id from the `201` body.
    pub accepted: BTreeMap<String, String>,
    /// Sign-ups answered with a `4xx` (a bug in a test that only sends valid ones).
    pub rejected: Vec<Rejection>,
    /// Sign-ups still failing after `SIGN_UP_PATIENCE`.
    pub abandoned: Vec<String>,
    /// Requests that failed and were sent again: a measure of how much the faults hurt.
    pub retried_requests: usize,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

impl BurstOutcome {
    /// Asserts that all `count` sign-ups were accepted with distinct user ids.
    pub fn assert_all_accepted(&self, count: usize) {
        assert!(
            self.rejected.is_empty(),
            "sign-ups rejected: {:?}",
            self.rejected
        );
        assert!(
            self.abandoned.is_empty(),
            "sign-ups never accepted: {:?}",
            self.abandoned
        );
        assert_eq!(self.accepted.len(), count, "every sign-up accepted");
        let distinct: std::collections::BTreeSet<&String> = self.accepted.values().collect();
        assert_eq!(distinct.len(), count, "every sign-up got its own user id");
    }
}

/// A burst in progress.
#[derive(Debug)]
pub struct Burst {
    /// The number of sign-ups accepted so far; a `watch` so that waiting for a
    /// milestone cannot miss the increment that reaches it.
    accepted: watch::Receiver<usize>,
    /// The task that runs the workers and assembles the outcome.
    handle: tokio::task::JoinHandle<BurstOutcome>,
    /// What it was started with: the count to expect, the patience for milestones.
    plan: BurstPlan,
}

impl Burst {
    /// Starts the sign-ups of `plan` against `target` and returns at once.
    pub fn start(target: BurstTarget, plan: BurstPlan) -> Self {
        let (progress, accepted) = watch::channel(0);
        let handle = tokio::spawn(run(target, plan, progress));
        Self {
            accepted,
            handle,
            plan,
        }
    }

    /// The plan the burst was started with.
    pub fn plan(&self) -> BurstPlan {
        self.plan
    }

    /// How many sign-ups have been accepted so far.
    pub fn accepted_so_far(&self) -> usize {
        *self.accepted.borrow()
    }

    /// Waits until at least `count` sign-ups have been accepted: a milestone at which a
    /// test injects its fault. Fails the test after the plan's
    /// [`BurstPlan::patience`] or if the burst ended short of `count`.
    pub async fn wait_until_accepted(&mut self, count: usize) {
        let timeout = self.plan.patience();
        let reached = tokio::time::timeout(timeout, self.accepted.wait_for(|n| *n >= count))
            .await
            .map(|waited| waited.map(|_| ()));
        match reached {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!(
                "the burst ended with {} sign-ups accepted, short of {count}",
                self.accepted_so_far()
            ),
            Err(_) => panic!(
                "only {} sign-ups accepted after {timeout:?}, waiting for {count}",
                self.accepted_so_far()
            ),
        }
    }

    /// Waits for every sign-up to be accepted, rejected or given up on.
    pub async fn finish(self) -> BurstOutcome {
        self.handle.await.expect("the burst task does not panic")
    }
}

/// The result of one sign-up.
enum SignUp {
    Accepted(String),
    Rejected(u16, String),
    Abandoned,
}

/// Runs the workers and collects their results.
async fn run(target: BurstTarget, plan: BurstPlan, progress: watch::Sender<usize>) -> BurstOutcome {
    let started = Instant::now();
    let count = plan.count;
    let next = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(progress);
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency.clamp(1, count.max(1)) {
        let (target, next, retried, progress) = (
            target.clone(),
            next.clone(),
            retried.clone(),
            progress.clone(),
        );
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= count {
                    return results;
                }
                tokio::time::sleep_until(started + plan.start_of(index)).await;
                let result = sign_up(&target, index, &retried).await;
                if matches!(result, SignUp::Accepted(_)) {
                    progress.send_modify(|accepted| *accepted += 1);
                }
                results.push((address(index), result));
            }
        });
    }
    let mut outcome = BurstOutcome::default();
    while let Some(results) = workers.join_next().await {
        for (address, result) in results.expect("a burst worker does not panic") {
            match result {
                SignUp::Accepted(user_id) => {
                    outcome.accepted.insert(address, user_id);
                }
                SignUp::Rejected(status, body) => outcome.rejected.push(Rejection {
                    address,
                    status,
                    body,
                }),
                SignUp::Abandoned => outcome.abandoned.push(address),
            }
        }
    }
    outcome.retried_requests = retried.load(Ordering::SeqCst);
    outcome.elapsed = started.elapsed();
    outcome
}

/// Signs up user `index`, retrying with the same `Idempotency-Key` until a definitive
/// answer or `SIGN_UP_PATIENCE`.
async fn sign_up(target: &BurstTarget, index: usize, retried: &AtomicUsize) -> SignUp {
    let address = address(index);
    let body = json!({ "email": address, "display_name": format!("User {index}") });
    let key = format!("burst-{index}");
    let deadline = Instant::now() + SIGN_UP_PATIENCE;
    let mut pause = FIRST_RETRY_PAUSE;
    for attempt in 0.. {
        let base = &target.registrations[(index + attempt) % target.registrations.len()];
        let response = target
            .http
            .post(format!("{base}/users"))
            .header("idempotency-key", &key)
            .json(&body)
            .send()
            .await;
        match response {
            Ok(response) if response.status() == StatusCode::CREATED => {
                // A 201 whose body cannot be read (cut mid-body) is retried like any
                // other failure: the replay returns the same user.
                if let Ok(created) = response.json::<Value>().await
                    && let Some(user_id) = created["id"].as_str()
                {
                    return SignUp::Accepted(user_id.to_owned());
                }
            }
            Ok(response)
                if !(response.status().is_server_error()
                    || response.status() == StatusCode::TOO_MANY_REQUESTS) =>
            {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                return SignUp::Rejected(status, text);
            }
            // 5xx (database unreachable, load shed, shutting down) or no answer at all.
            Ok(_) | Err(_) => {}
        }
        if Instant::now() >= deadline {
            return SignUp::Abandoned;
        }
        retried.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
    SignUp::Abandoned
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A paced plan spreads the starts evenly; an unpaced one starts all at once.
    #[test]
    fn a_paced_plan_spreads_the_starts() {
        let plan = BurstPlan {
            count: 500,
            concurrency: 24,
            per_second: Some(50),
        };
        assert_eq!(plan.start_of(0), Duration::ZERO);
        assert_eq!(plan.start_of(50), Duration::from_secs(1));
        assert_eq!(plan.start_of(125), Duration::from_millis(2500));
        let unpaced = BurstPlan {
            per_second: None,
            ..plan
        };
        assert_eq!(unpaced.start_of(499), Duration::ZERO);
    }

    /// Addresses are distinct, ordered like their index and already lower case.
    #[test]
    fn addresses_are_distinct_and_normalised() {
        assert_eq!(address(7), "user00007@burst.example.org");
        assert!(address(9) < address(10));
        assert_eq!(address(12), address(12).to_lowercase());
    }
}
