//! Knowing when a phase is complete without asking about each sign-up: the consumers count
//! their effects on `/metrics` (`profiles_created_total`, `welcome_mails_sent_total`), so
//! one request per service every [`POLL_INTERVAL`] says how many are done, however many
//! are outstanding.
//!
//! Asking each service about each sign-up while the load runs (the trackers do, once per
//! sign-up, afterwards) would be a second workload on the system under test: on the
//! 2-core machine it was a third of the email service's CPU and a database query per
//! sign-up per consumer.

use std::time::Duration;

use indicatif::ProgressBar;
use tokio::time::Instant;

use super::Targets;

/// How often the counters are read.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The counter of profiles written (first time only: a redelivery does not count).
const PROFILES: &str = "profiles_created_total";

/// The counter of welcome mails the SMTP server accepted.
const MAILS: &str = "welcome_mails_sent_total";

/// Reads the two counters.
#[derive(Debug, Clone)]
pub(super) struct Counters {
    http: reqwest::Client,
    /// `/metrics` of each profile instance.
    profiles: Vec<String>,
    /// `/metrics` of each email instance.
    emails: Vec<String>,
}

/// The two counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Counts {
    profiles: f64,
    mails: f64,
}

impl Counts {
    /// Sign-ups with both effects since `baseline`, if the effects are one per sign-up.
    fn complete_since(self, baseline: Counts) -> usize {
        let profiles = (self.profiles - baseline.profiles).max(0.0);
        let mails = (self.mails - baseline.mails).max(0.0);
        profiles.min(mails) as usize
    }
}

impl Counters {
    /// The counters of the services in `targets`.
    pub(super) fn new(http: &reqwest::Client, targets: &Targets) -> Self {
        Self {
            http: http.clone(),
            profiles: metrics_urls(&targets.profiles),
            emails: metrics_urls(&targets.emails),
        }
    }

    /// Both counters, or `None` if a service did not answer or does not export them.
    pub(super) async fn read(&self) -> Option<Counts> {
        let (profiles, mails) = tokio::join!(
            self.counter(&self.profiles, PROFILES),
            self.counter(&self.emails, MAILS)
        );
        Some(Counts {
            profiles: profiles?,
            mails: mails?,
        })
    }

    /// Waits until `expected` sign-ups have both effects since `baseline`, or `deadline`
    /// passes; moves `bar` along. Returns whether they all did.
    pub(super) async fn wait_for(
        &self,
        baseline: Counts,
        expected: usize,
        deadline: Instant,
        bar: &ProgressBar,
    ) -> bool {
        loop {
            if let Some(now) = self.read().await {
                let complete = now.complete_since(baseline);
                bar.set_position(complete.min(expected) as u64);
                if complete >= expected {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The counter `name` added up over the instances at `urls`; `None` unless every
    /// instance answered with it.
    async fn counter(&self, urls: &[String], name: &str) -> Option<f64> {
        let mut total = 0.0;
        for url in urls {
            let response = self.http.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            total += sum_of(&response.text().await.ok()?, name)?;
        }
        Some(total)
    }
}

/// `/metrics` of each base URL.
fn metrics_urls(bases: &[String]) -> Vec<String> {
    bases.iter().map(|base| format!("{base}/metrics")).collect()
}

/// The sum of every series of the counter `name` in a Prometheus text exposition, or
/// `None` if it has none.
pub(crate) fn sum_of(exposition: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(value) = value {
            found = Some(found.unwrap_or(0.0) + value);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_series_of_one_counter_and_ignores_the_others() {
        let exposition = "# HELP welcome_mails_sent_total Welcome mails.\n\
             # TYPE welcome_mails_sent_total counter\n\
             welcome_mails_sent_total 41\n\
             welcome_mails_sent_total_other 1000\n\
             profiles_created_total{shard=\"a\"} 2\n\
             profiles_created_total{shard=\"b\"} 3\n";
        assert_eq!(sum_of(exposition, MAILS), Some(41.0));
        assert_eq!(sum_of(exposition, PROFILES), Some(5.0));
        assert_eq!(sum_of(exposition, "users_registered_total"), None);
    }

    #[test]
    fn a_sign_up_is_complete_when_both_counters_have_moved() {
        let baseline = Counts {
            profiles: 10.0,
            mails: 7.0,
        };
        let now = Counts {
            profiles: 15.0,
            mails: 9.0,
        };
        assert_eq!(now.complete_since(baseline), 2);
    }
}
