//! The names one test system owns: its broker prefix, exchange, queues and databases.
//!
//! Every name derives from one random id, so parallel tests never share a queue or a
//! row, and cleanup knows exactly what to delete without asking the broker.

use crate::defaults;

use super::options::{RetrySchedule, Service};

/// The work queues the `user.registered.v1` events go to, without prefix.
pub const USER_REGISTERED_QUEUES: [&str; 2] = ["email.user-registered", "profile.user-registered"];

/// The work queues the `user.deleted.v1` events go to, without prefix.
pub const USER_DELETED_QUEUES: [&str; 2] = ["email.user-deleted", "profile.user-deleted"];

/// Every consumer's work queue, without prefix.
pub const CONSUMER_QUEUES: [&str; 4] = [
    USER_REGISTERED_QUEUES[0],
    USER_REGISTERED_QUEUES[1],
    USER_DELETED_QUEUES[0],
    USER_DELETED_QUEUES[1],
];

/// The names of one system's exchange, queues and databases. Owned and cheap to clone,
/// so cleanup can take a copy to a thread of its own.
#[derive(Debug, Clone)]
pub struct Topology {
    /// `t` and ten hex digits: the prefix of every broker name, the stem of every
    /// database name.
    id: String,
    /// The retry schedule, which names the delay queues.
    retry: RetrySchedule,
}

impl Topology {
    /// A fresh random id for a system with consumers retrying on `retry`.
    pub fn new(retry: RetrySchedule) -> Self {
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        Self { id, retry }
    }

    /// The system's id (the stem of every name it owns).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The consumers' retry schedule, from which the delay queues are named.
    pub fn retry_schedule(&self) -> RetrySchedule {
        self.retry
    }

    /// `t<id>.`: the prefix of this system's exchange and queues (`TOPOLOGY_PREFIX`).
    pub fn prefix(&self) -> String {
        format!("{}.", self.id)
    }

    /// The exchange's name.
    pub fn exchange(&self) -> String {
        format!("{}users", self.prefix())
    }

    /// A consumer's work queue, e.g. `queue("email.user-registered")`.
    pub fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.prefix())
    }

    /// The delay queues of a consumer's work queue (`name` without prefix), one per
    /// retry delay, as the consumer names them.
    pub fn delay_queues(&self, name: &str) -> Vec<String> {
        let work = self.queue(name);
        self.retry
            .delays()
            .iter()
            .map(|delay| format!("{work}.delay.{}ms", delay.as_millis()))
            .collect()
    }

    /// A consumer's dead-letter queue (`name` without prefix).
    pub fn dead_letter_queue(&self, name: &str) -> String {
        format!("{}.dlq", self.queue(name))
    }

    /// Every queue this system may have declared: work queues, DLQs, delay queues.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for consumer in CONSUMER_QUEUES {
            names.extend(self.delay_queues(consumer));
            names.push(self.dead_letter_queue(consumer));
            names.push(self.queue(consumer));
        }
        names
    }

    /// Every exchange of the system: the events and replay exchanges, and each
    /// consumer's forwarding exchange.
    pub fn exchange_names(&self) -> Vec<String> {
        let mut names = vec![self.exchange(), format!("{}replay", self.prefix())];
        names.extend(
            CONSUMER_QUEUES
                .iter()
                .map(|consumer| format!("{}.forward", self.queue(consumer))),
        );
        names
    }

    /// The name of the service's own database.
    pub fn database(&self, service: Service) -> String {
        format!("{}_{}", self.id, service.name())
    }

    /// The service's own database URL, straight to PostgreSQL (no proxy).
    pub fn database_url(&self, service: Service) -> String {
        format!("{}/{}", defaults::POSTGRES_BASE, self.database(service))
    }
}
