//! Per-user ordering at scale: the guarantee of docs/decisions/0012 (a user's events are
//! applied by `sequence`, whatever order they arrive in) with two registrations, so two
//! outbox relays on one outbox, and three instances each of email and profile competing
//! for every queue.
//!
//! A user's `user.registered.v1` (sequence 1) and `user.deleted.v1` (sequence 2) go
//! through different queues in each service (`<service>.user-registered` and
//! `<service>.user-deleted`), each consumed by three instances with a consume loop per
//! queue, and here usually leave through different relays. Nothing but the sequence orders
//! them, and the test makes them overtake each other in two ways:
//!
//! - **In a race.** A few hundred users sign up through both registrations at once, and
//!   two thirds of them are deleted the moment their sign-up is answered, through the
//!   other registration. A deletion either removes the registration from the outbox before
//!   a relay sent it (then it is never sent), or follows it through the other relay into
//!   the other queue, where it is often consumed first: the registration queues carry the
//!   backlog (a mail to send per event), the deletion queues hardly any. How often each
//!   happens is up to timing; the test prints it.
//! - **By force.** For some users the registration is taken out of both registration
//!   queues before any consumer sees it (as `erasure.rs` does for one user), the users are
//!   deleted and their deletions applied, and the registrations are put back while the
//!   race runs. Each is certain to reach an instance (one of three, whichever the broker
//!   picks) after its user's deletion was applied, and as a new event for the inbox: only
//!   the sequence can turn it away.
//!
//! Whatever the order, every user must end the same: a deleted user has a tombstone in
//! profile (sequence 2, no name), no mail record, and email knows them erased at sequence
//! 2; a kept user has one profile at sequence 1 and one sent welcome mail. Without the
//! sequence check in either consumer the forced users alone make this fail.
//!
//! Each instance counts the deliveries it turned away in `events_skipped_total` (by
//! reason, `stale` or `already_applied`) and logs each with its event id. The test reads
//! both: it prints how many deliveries each instance turned away, each forced
//! registration must be among the logged ones, once per service, and each instance's
//! counter must agree with its log.

use std::time::Instant;

use lapin::message::BasicGetMessage;
use system_tests::{
    broker::Broker,
    system::{CONSUMER_QUEUES, Options, Service, TestSystem},
};

mod counters;
mod end_states;
mod forcing;
mod report;

use counters::settle;
use end_states::assert_end_states;
use forcing::{event_ids, hold_back_registrations, race, redrive, wait_until_erased};
use report::{check_turned_away, report_race};

/// Users who race: signed up through both registrations at once.
const RACING_USERS: usize = 450;

/// Users whose registration is held back and comes back after their deletion.
const LATE_USERS: usize = 30;

/// Requests in flight at once: enough to keep both registrations and all six consumers
/// busy, so that events of one user really do overlap.
const CONCURRENCY: usize = 16;

/// Registration instances: two relays share the outbox.
const REGISTRATIONS: usize = 2;

/// Instances of email and of profile.
const CONSUMERS: usize = 3;

/// Each process's database pool. Eight processes (two registrations, three emails, three
/// profiles) take 24 connections at three each, against 15 for an ordinary system (three
/// processes at `DATABASE_POOL`, 5); every test shares one PostgreSQL of 100 connections
/// and two systems may run at once, so a full-size pool each (40) would crowd the other
/// system. Three are enough: a consumer writes each queue's batch through one group-commit
/// writer at a time, and the prefetch bounds the deliveries waiting for it.
const DATABASE_POOL: u32 = 3;

/// Each consumer instance's prefetch: half the harness's, so that each queue's deliveries
/// spread over its three instances instead of one or two taking the backlog, and so that
/// email's erasures (one transaction per delivery) wait for one of the three connections
/// only briefly.
const CONSUMER_PREFETCH: u16 = system_tests::system::CONSUMER_PREFETCH / 2;

/// What the test did to a user, which decides how the user must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Signed up and never deleted.
    Kept,
    /// Deleted as soon as the sign-up was answered, racing the registration.
    Raced,
    /// Deleted while the registration was held back, which came back after the deletion
    /// had been applied.
    Overtaken,
}

/// One user of the test.
#[derive(Debug, Clone)]
pub(super) struct User {
    pub(super) id: String,
    pub(super) address: String,
    /// The registration instance the user signed up through; the deletion goes through
    /// the other.
    pub(super) signed_up_through: usize,
    pub(super) fate: Fate,
}

impl User {
    /// The registration instance that is not the one the user signed up through.
    pub(super) fn other_registration(&self) -> usize {
        (self.signed_up_through + 1) % REGISTRATIONS
    }
}

/// A registration taken out of a work queue, with the queue it goes back to.
pub(super) type Held = (String, BasicGetMessage);

/// Two relays, three consumers per queue, users deleted as they sign up and registrations
/// forced to arrive after their deletion: every user ends as the highest sequence says,
/// with no duplicate and nothing dead-lettered, and every instance took part.
#[tokio::test(flavor = "multi_thread")]
async fn per_user_ordering_holds_with_two_relays_and_three_consumers_per_queue() {
    let started = Instant::now();
    let options = Options {
        extra_env: vec![
            (
                "DATABASE_MAX_CONNECTIONS".to_owned(),
                DATABASE_POOL.to_string(),
            ),
            (
                "CONSUMER_PREFETCH".to_owned(),
                CONSUMER_PREFETCH.to_string(),
            ),
        ],
        ..Options::default()
    };
    let mut system = TestSystem::start_with(options).await;
    for _ in 1..REGISTRATIONS {
        system.processes().add_instance(Service::Registration).await;
    }
    let broker = Broker::connect().await;

    let (late_users, held) = hold_back_registrations(&mut system, &broker).await;
    // Nothing has been consumed yet, so the restarted first instances' counters (which
    // start again at 0) miss nothing the settling below adds up.
    for service in [Service::Email, Service::Profile] {
        system.processes().restart(service, 0).await;
        for _ in 1..CONSUMERS {
            system.processes().add_instance(service).await;
        }
    }
    wait_until_erased(&system, &late_users).await;
    let late_events = event_ids(&held);
    let race_started = Instant::now();

    let (mut users, ()) = tokio::join!(race(&system), redrive(&broker, held));
    let raced_in = race_started.elapsed();
    users.extend(late_users);

    let counters = settle(&system, &broker, users.len()).await;
    assert_end_states(&system, &users).await;
    for consumer in CONSUMER_QUEUES {
        let dead_letters = system.topology().dead_letter_queue(consumer);
        assert_eq!(broker.ready_count(&dead_letters).await, 0, "{dead_letters}");
    }
    counters.assert_every_instance_worked();
    report_race(&system, &users, &counters, raced_in);
    check_turned_away(&mut system, &late_events).await;
    println!("ordering at scale: the test took {:.1?}", started.elapsed());
}
