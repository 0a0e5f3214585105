//! What one load run does: where it sends, how many sign-ups, how fast, how long it waits.
//!
//! Kept apart from the sending so that the schedule (when sign-up `i` is due, when the
//! run stops) is a pure function that tests can check without a server.

use std::time::Duration;

/// Sign-ups in a run when neither a count nor a duration is given.
pub const DEFAULT_COUNT: usize = 1000;

/// Requests in flight at most when none is given: enough to saturate registration on a
/// small machine without tripping its load shedding (256 in flight).
pub const DEFAULT_CONCURRENCY: usize = 64;

/// How long a run waits, after its last POST, for every accepted sign-up to show its
/// profile and its sent mail.
pub const DEFAULT_COMPLETE_TIMEOUT: Duration = Duration::from_secs(120);

/// The base URLs (`http://host:port`, no trailing slash) of one or more instances of each
/// service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// registration's instances, taken in turn for `POST /users`.
    pub registrations: Vec<String>,
    /// profile's instances: their counters add up; the first answers
    /// `GET /profiles/{id}` for all (they share one database).
    pub profiles: Vec<String>,
    /// email's instances: likewise, with `GET /emails?to=`.
    pub emails: Vec<String>,
}

impl Targets {
    /// The services' default local ports (8080, 8082, 8081).
    pub fn local() -> Self {
        Self {
            registrations: vec!["http://127.0.0.1:8080".to_owned()],
            profiles: vec!["http://127.0.0.1:8082".to_owned()],
            emails: vec!["http://127.0.0.1:8081".to_owned()],
        }
    }
}

/// A load run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where the services are.
    pub targets: Targets,
    /// Measured sign-ups at most; `None` with a `duration` for "until the time is up".
    pub count: Option<usize>,
    /// Stop starting sign-ups after this long; `None` for "until `count` are sent".
    pub duration: Option<Duration>,
    /// Sign-ups started per second (open loop: each has a scheduled start, whether or not
    /// earlier ones have been answered); `None` for as fast as `concurrency` allows.
    pub rate: Option<f64>,
    /// Requests in flight at most (and keep-alive connections to registration).
    pub concurrency: usize,
    /// Sign-ups sent and waited for before the measured ones, left out of every figure:
    /// connections, pools, caches and the broker's queues are warm when measuring starts.
    pub warmup: usize,
    /// How long to wait for completion after the last POST (and after the warm-up).
    pub complete_timeout: Duration,
    /// Draw progress bars on stderr (indicatif hides them when it is not a terminal).
    pub progress: bool,
}

impl Plan {
    /// [`DEFAULT_COUNT`] sign-ups as fast as [`DEFAULT_CONCURRENCY`] allows against
    /// `targets`, no warm-up, no progress bars.
    pub fn new(targets: Targets) -> Self {
        Self {
            targets,
            count: Some(DEFAULT_COUNT),
            duration: None,
            rate: None,
            concurrency: DEFAULT_CONCURRENCY,
            warmup: 0,
            complete_timeout: DEFAULT_COMPLETE_TIMEOUT,
            progress: false,
        }
    }

    /// When sign-up `index` is due, counted from the start of sending: `index / rate`
    /// in an open-loop run, at once in a closed-loop one.
    pub fn due(&self, index: usize) -> Duration {
        match self.rate {
            Some(rate) if rate > 0.0 => Duration::from_secs_f64(index as f64 / rate),
            _ => Duration::ZERO,
        }
    }

    /// Whether sign-up `index` is part of the run, given `elapsed` since the start of
    /// sending: within the count, and due (open loop) or started (closed loop) before
    /// the duration is up.
    pub fn includes(&self, index: usize, elapsed: Duration) -> bool {
        if self.count.is_some_and(|count| index >= count) {
            return false;
        }
        match self.duration {
            Some(limit) if self.rate.is_some() => self.due(index) < limit,
            Some(limit) => elapsed < limit,
            None => true,
        }
    }

    /// The number of sign-ups the run will send, if it is known in advance (for the
    /// progress bar): the count, or rate × duration, whichever is smaller.
    pub fn expected(&self) -> Option<usize> {
        let by_time = match (self.rate, self.duration) {
            (Some(rate), Some(limit)) => Some((rate * limit.as_secs_f64()).ceil() as usize),
            _ => None,
        };
        match (self.count, by_time) {
            (Some(count), Some(by_time)) => Some(count.min(by_time)),
            (count, by_time) => count.or(by_time),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open-loop plan spreads the starts; a closed-loop one has them all due at once.
    #[test]
    fn due_times_follow_the_rate() {
        let mut plan = Plan::new(Targets::local());
        assert_eq!(plan.due(500), Duration::ZERO);
        plan.rate = Some(200.0);
        assert_eq!(plan.due(0), Duration::ZERO);
        assert_eq!(plan.due(200), Duration::from_secs(1));
        assert_eq!(plan.due(50), Duration::from_millis(250));
    }

    /// A count, a duration, or both bound the run; rate × duration is what is expected.
    #[test]
    fn count_and_duration_bound_the_run() {
        let mut plan = Plan::new(Targets::local());
        plan.count = Some(10);
        assert!(plan.includes(9, Duration::from_secs(999)));
        assert!(!plan.includes(10, Duration::ZERO));
        plan.count = None;
        plan.duration = Some(Duration::from_secs(2));
        assert!(plan.includes(1_000_000, Duration::from_millis(1999)));
        assert!(!plan.includes(0, Duration::from_secs(2)));
        assert_eq!(plan.expected(), None);
        plan.rate = Some(100.0);
        assert!(plan.includes(199, Duration::from_secs(60)));
        assert!(!plan.includes(200, Duration::ZERO));
        assert_eq!(plan.expected(), Some(200));
        plan.count = Some(50);
        assert_eq!(plan.expected(), Some(50));
    }
}
