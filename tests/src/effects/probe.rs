//! [`EffectsProbe`]: the questions a test asks about what the system did.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::time::Instant;

use crate::{
    burst::{Burst, BurstOutcome},
    eventually::{eventually, poll_every},
    system::{Service, TestSystem},
};

use super::{Effects, counter::Counter, report, settle_timeout};

/// How often settling looks again: each look is a dozen queries and broker calls, so
/// less often than [`crate::eventually::POLL_INTERVAL`].
const SETTLE_POLL: Duration = Duration::from_millis(500);

/// What one system did, asked of its databases, the SMTP sink and the broker
/// (`system.effects()`). The harness's queries go straight to PostgreSQL, never through
/// a proxy a test may have cut, so a test can count rows while a service is cut off.
#[derive(Debug, Clone, Copy)]
pub struct EffectsProbe<'a> {
    system: &'a TestSystem,
}

impl<'a> EffectsProbe<'a> {
    /// The probe of `system`.
    pub(crate) fn new(system: &'a TestSystem) -> Self {
        Self { system }
    }

    /// The system looked at.
    pub(super) fn system(&self) -> &'a TestSystem {
        self.system
    }

    /// A pool on the service's database, for looking at its rows. Two connections at
    /// most: the harness queries one at a time, and every connection it holds is one
    /// less for the services (all tests share one PostgreSQL with 100 connections).
    pub async fn db(&self, service: Service) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.system.topology().database_url(service))
            .await
            .expect("the service created its database")
    }

    /// A number from a service's database, e.g. a count.
    pub async fn scalar(&self, service: Service, sql: &'static str) -> i64 {
        let db = self.db(service).await;
        let value = sqlx::query_scalar(sql)
            .fetch_one(&db)
            .await
            .unwrap_or_else(|error| panic!("{sql} on {}: {error}", service.name()));
        db.close().await;
        value
    }

    /// Polls `sql` (a single number) on `service`'s database until it is at least
    /// `at_least`, and returns it; fails the test after `timeout`. For faults that must
    /// strike mid-stream, e.g. "kill the consumer once it has made 150 profiles".
    pub async fn wait_for_count(
        &self,
        service: Service,
        sql: &'static str,
        at_least: i64,
        timeout: Duration,
    ) -> i64 {
        let db = self.db(service).await;
        let what = format!("{sql} on {} to reach {at_least}", service.name());
        let count = eventually(
            what,
            timeout,
            async || match sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await {
                Ok(count) if count >= at_least => Ok(count),
                Ok(count) => Err(count.to_string()),
                Err(error) => Err(error.to_string()),
            },
        )
        .await;
        db.close().await;
        count
    }

    /// Waits until both consumers of `user.registered.v1` have handled `count` of its
    /// deliveries to the end (acked as done), from their `/metrics`. After
    /// [`EffectsProbe::pass_marker`], which only says the marker's effects are visible,
    /// this is what says the messages queued before it are finished too.
    pub async fn wait_for_registrations_done(&self, count: u64) {
        for (service, queue) in [
            (Service::Email, "email.user-registered"),
            (Service::Profile, "profile.user-registered"),
        ] {
            let done =
                format!(r#"events_consumed_total{{queue="{queue}",outcome="done"}} {count}"#);
            self.system.ops(service).wait_for_metrics(&[&done]).await;
        }
    }

    /// Waits until every accepted sign-up (address → user id) has taken effect and no
    /// work or delay queue holds a message, passes a marker
    /// ([`EffectsProbe::pass_marker`]) so that a late duplicate already on its way has
    /// landed, then counts the effects. Does not fail on timeout: the caller's
    /// assertions on the returned [`Effects`] say what is missing, better than a
    /// timeout would.
    pub async fn settle(&self, accepted: &BTreeMap<String, String>) -> Effects {
        self.settle_except(accepted, &[]).await
    }

    /// Like [`EffectsProbe::settle`], not waiting for mails to the addresses in
    /// `unmailed` (events expected to end in a dead-letter queue).
    pub async fn settle_except(
        &self,
        accepted: &BTreeMap<String, String>,
        unmailed: &[String],
    ) -> Effects {
        let unmailed: BTreeSet<String> = unmailed.iter().cloned().collect();
        let started = Instant::now();
        let counter = Counter::open(self).await;
        let look = async || counter.count(self.system, accepted).await;
        let settled = poll_every(SETTLE_POLL, settle_timeout(accepted.len()), async || {
            let effects = look().await;
            if effects.is_settled(&unmailed) {
                Ok(effects)
            } else {
                Err(effects)
            }
        })
        .await;
        let mut effects = match settled {
            Ok(_) => {
                self.pass_marker().await;
                look().await
            }
            Err(Some(effects)) => effects,
            Err(None) => look().await,
        };
        effects.waited = started.elapsed();
        counter.close().await;
        effects
    }

    /// The usual end of a fault test: waits for the burst to end, asserts that every
    /// sign-up was accepted, settles and prints the [`report`] line under `label`.
    pub async fn after_burst(&self, burst: Burst, label: &str) -> (BurstOutcome, Effects) {
        self.after_burst_except(burst, label, &[]).await
    }

    /// Like [`EffectsProbe::after_burst`], settling with
    /// [`EffectsProbe::settle_except`]`(…, unmailed)`.
    pub async fn after_burst_except(
        &self,
        burst: Burst,
        label: &str,
        unmailed: &[String],
    ) -> (BurstOutcome, Effects) {
        let count = burst.plan().count;
        let outcome = burst.finish().await;
        outcome.assert_all_accepted(count);
        let effects = self.settle_except(&outcome.accepted, unmailed).await;
        self.report(label, &outcome, &effects);
        (outcome, effects)
    }

    /// Prints the [`report`] line of a fault test, timed from the system's start.
    pub fn report(&self, label: &str, outcome: &BurstOutcome, effects: &Effects) {
        report(label, outcome, effects, self.system.started());
    }

    /// How many markers have been passed: each is one more event published and
    /// consumed than the test itself caused, which a test counting events must allow.
    pub fn markers_passed(&self) -> usize {
        self.system.markers().len()
    }
}
