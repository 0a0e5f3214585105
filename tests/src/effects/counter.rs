//! One look at everything a system did, counted into an [`Effects`].

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use sqlx::PgPool;

use crate::{
    broker::Broker,
    system::{CONSUMER_QUEUES, Service, TestSystem},
};

use super::{Effects, probe::EffectsProbe};

/// The connections counting goes through, opened once for all the looks settling takes.
pub(super) struct Counter {
    registration: PgPool,
    email: PgPool,
    profile: PgPool,
    broker: Broker,
}

impl Counter {
    /// Opens a pool on each service's database and a broker connection.
    pub(super) async fn open(probe: &EffectsProbe<'_>) -> Self {
        Self {
            registration: probe.db(Service::Registration).await,
            email: probe.db(Service::Email).await,
            profile: probe.db(Service::Profile).await,
            broker: Broker::connect().await,
        }
    }

    /// Closes the pools, so their connections go back to the shared PostgreSQL at once.
    pub(super) async fn close(self) {
        self.registration.close().await;
        self.email.close().await;
        self.profile.close().await;
    }

    /// One look at everything, measured against `accepted` (address → user id). The
    /// system's marker sign-ups are left out: they are the harness's, not the test's.
    /// A query that fails counts as "not there yet".
    pub(super) async fn count(
        &self,
        system: &TestSystem,
        accepted: &BTreeMap<String, String>,
    ) -> Effects {
        let markers = system.markers().snapshot();
        let marker_ids: Vec<String> = markers.iter().map(|m| m.user_id.clone()).collect();
        let marker_addresses: BTreeSet<&str> = markers.iter().map(|m| m.address.as_str()).collect();
        let scalar = async |pool: &PgPool, sql: &'static str| {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(&marker_ids)
                .fetch_one(pool)
                .await
                .unwrap_or(-1)
        };
        let users = scalar(
            &self.registration,
            "select count(*) from users where user_id::text <> all($1)",
        )
        .await;
        let unpublished = scalar(
            &self.registration,
            "select count(*) from outbox where published_at is null \
             and aggregate_id::text <> all($1)",
        )
        .await;
        let sent_rows = scalar(
            &self.email,
            "select count(*) from welcome_mails where status = 'sent' \
             and user_id::text <> all($1)",
        )
        .await;
        let pending_rows = scalar(
            &self.email,
            "select count(*) from welcome_mails where status = 'pending' \
             and user_id::text <> all($1)",
        )
        .await;
        let profile_ids: Vec<String> =
            sqlx::query_scalar("select user_id::text from profiles where user_id::text <> all($1)")
                .bind(&marker_ids)
                .fetch_all(&self.profile)
                .await
                .unwrap_or_default();

        let accepted_ids: BTreeSet<&str> = accepted.values().map(String::as_str).collect();
        let profile_set: BTreeSet<&str> = profile_ids.iter().map(String::as_str).collect();
        let missing_profiles = accepted_ids
            .difference(&profile_set)
            .map(|id| (*id).to_owned())
            .collect();
        let unexpected_profiles = profile_set
            .difference(&accepted_ids)
            .map(|id| (*id).to_owned())
            .collect();

        let mails: Vec<_> = system
            .smtp
            .messages()
            .into_iter()
            .filter(|mail| {
                !marker_addresses.contains(mail.recipient().to_ascii_lowercase().as_str())
            })
            .collect();
        let mut by_address: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for mail in &mails {
            by_address
                .entry(mail.recipient().to_ascii_lowercase())
                .or_default()
                .push(mail.header("message-id").unwrap_or_default());
        }
        let unmailed = accepted
            .keys()
            .filter(|address| !by_address.contains_key(*address))
            .cloned()
            .collect();
        let unexpected_mails = by_address
            .keys()
            .filter(|address| !accepted.contains_key(*address))
            .cloned()
            .collect();
        let duplicate_mails = by_address
            .into_iter()
            .filter(|(_, ids)| ids.len() > 1)
            .collect();

        let (dead_letters, waiting) = self.queues(system).await;
        Effects {
            accepted: accepted.len(),
            users,
            unpublished,
            profiles: profile_ids.len(),
            distinct_profiles: profile_set.len(),
            missing_profiles,
            unexpected_profiles,
            mails: mails.len(),
            unmailed,
            unexpected_mails,
            duplicate_mails,
            sent_rows,
            pending_rows,
            dead_letters,
            waiting,
            waited: Duration::ZERO,
        }
    }

    /// The messages in each dead-letter queue (zeros included), and the work and delay
    /// queues that hold any, with their counts.
    async fn queues(&self, system: &TestSystem) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
        let topology = system.topology();
        let mut dead_letters = BTreeMap::new();
        let mut waiting = BTreeMap::new();
        for consumer in CONSUMER_QUEUES {
            let dlq = topology.dead_letter_queue(consumer);
            let count = self.broker.ready_count(&dlq).await;
            dead_letters.insert(dlq, count);
            let mut queues = vec![topology.queue(consumer)];
            queues.extend(topology.delay_queues(consumer));
            for queue in queues {
                let count = self.broker.ready_count(&queue).await;
                if count > 0 {
                    waiting.insert(queue, count);
                }
            }
        }
        (dead_letters, waiting)
    }
}
