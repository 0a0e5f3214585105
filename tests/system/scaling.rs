//! Competing consumers: 1, 2 and 4 instances of every service on one database and one
//! set of queues. Every registration instance takes its share of the sign-ups and its
//! relay publishes from the shared outbox (`for update skip locked`); the email and
//! profile instances compete for the deliveries of their service's queues.
//!
//! What must hold at every count: each sign-up has exactly one profile and one mail, no
//! event is published or consumed twice, and no instance starves. What the test also
//! measures, and prints without asserting: sign-ups per second end to end and the
//! services' CPU time per sign-up at each count. On this project's 2-core machines, with
//! debug binaries and the broker and database on the same cores, more instances cannot
//! be faster: the figures show what each one adds in overhead (more connections, more
//! consume loops, smaller group commits), not the speed-up a cluster would see.
//! `docs/scaling.md` has the release-build figures of the benchmark.

use std::{collections::BTreeMap, time::Duration};

use system_tests::{
    burst::{Burst, BurstPlan, DEFAULT_CONCURRENCY, burst_size},
    eventually::{PATIENCE, eventually},
    procfs::{self, Pid},
    system::{Options, Service, TestSystem},
};
use tokio::time::Instant;

/// The instance counts of the rounds, in order.
const INSTANCES: [usize; 3] = [1, 2, 4];

/// Each instance's database pool. With four instances of three services that is 48
/// connections of the shared PostgreSQL's 100, leaving room for a second test system
/// beside this one; the same in every round, so that the rounds differ only in the
/// number of instances.
const DATABASE_POOL: u32 = 4;

/// What one round measured.
#[derive(Debug)]
struct Round {
    instances: usize,
    sign_ups: usize,
    /// From the first `POST` to the last profile and mail being there.
    elapsed: Duration,
    /// CPU time of all instances of each service meanwhile, ms, in [`Service::ALL`] order.
    cpu_ms: [f64; 3],
}

impl Round {
    fn per_second(&self) -> f64 {
        self.sign_ups as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_per_sign_up(&self, service: usize) -> f64 {
        self.cpu_ms[service] / self.sign_ups as f64
    }
}

/// The same unpaced burst through 1, 2 and 4 instances of every service, each round on
/// a system of its own: every round's effects exactly once, every instance busy, and the
/// figures printed side by side.
#[tokio::test(flavor = "multi_thread")]
async fn one_two_and_four_instances_share_the_work_without_duplicates() {
    let mut rounds = Vec::new();
    for instances in INSTANCES {
        rounds.push(round(instances).await);
    }
    println!("competing consumers (debug binaries, one shared 2-core machine):");
    println!(
        "instances | sign-ups/s end to end | CPU ms per sign-up: registration, email, profile (all instances)"
    );
    for round in &rounds {
        println!(
            "{:>9} | {:>21.0} | {:.2}, {:.2}, {:.2}",
            round.instances,
            round.per_second(),
            round.cpu_per_sign_up(0),
            round.cpu_per_sign_up(1),
            round.cpu_per_sign_up(2),
        );
    }
}

/// Starts a system with `instances` of every service, drives an unpaced burst through
/// it, times it, then checks its effects and each instance's share.
async fn round(instances: usize) -> Round {
    let options = Options {
        extra_env: vec![(
            "DATABASE_MAX_CONNECTIONS".to_owned(),
            DATABASE_POOL.to_string(),
        )],
        ..Options::default()
    };
    let mut system = TestSystem::start_with(options).await;
    for service in Service::ALL {
        for _ in 1..instances {
            system.processes().add_instance(service).await;
        }
    }
    let plan = BurstPlan {
        count: burst_size(),
        concurrency: DEFAULT_CONCURRENCY,
        per_second: None,
    };
    let label = format!("{instances} instance(s) of each service");

    let cpu_before = cpu_ms(&mut system, instances);
    let started = Instant::now();
    let burst = Burst::start(system.burst_target(), plan);
    wait_until_every_effect_is_there(&system, plan.count).await;
    let elapsed = started.elapsed();
    let cpu_after = cpu_ms(&mut system, instances);

    let (_, effects) = system.effects().after_burst(burst, &label).await;
    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
    // Settling passed a marker sign-up through the system: one more event for each.
    let events = plan.count + system.effects().markers_passed();
    assert_every_instance_took_a_share(&system, instances, events).await;
    Round {
        instances,
        sign_ups: plan.count,
        elapsed,
        cpu_ms: std::array::from_fn(|index| cpu_after[index] - cpu_before[index]),
    }
}

/// Waits until `count` profiles and `count` sent mails exist (nothing else writes them
/// in this system).
async fn wait_until_every_effect_is_there(system: &TestSystem, count: usize) {
    let email = system.effects().db(Service::Email).await;
    let profile = system.effects().db(Service::Profile).await;
    let count = i64::try_from(count).expect("a burst fits in an i64");
    eventually(
        format!("{count} profiles and sent mails"),
        BurstPlan::standard().patience(),
        async || {
            let mails: i64 =
                sqlx::query_scalar("select count(*) from welcome_mails where status = 'sent'")
                    .fetch_one(&email)
                    .await
                    .unwrap_or(0);
            let profiles: i64 = sqlx::query_scalar("select count(*) from profiles")
                .fetch_one(&profile)
                .await
                .unwrap_or(0);
            if mails >= count && profiles >= count {
                Ok(())
            } else {
                Err(format!("{mails} mails, {profiles} profiles"))
            }
        },
    )
    .await;
    email.close().await;
    profile.close().await;
}

/// CPU time so far of all instances of each service, ms, in [`Service::ALL`] order.
fn cpu_ms(system: &mut TestSystem, instances: usize) -> [f64; 3] {
    Service::ALL.map(|service| {
        (0..instances)
            .filter_map(|number| system.processes().instance(service, number).pid())
            .filter_map(|pid| procfs::cpu_time(Pid::Of(pid)))
            .map(|time| time.as_secs_f64() * 1000.0)
            .sum()
    })
}

/// Every registration instance published and every consumer instance handled some of
/// the `events`, and between them each event exactly once: the instances' own counters.
async fn assert_every_instance_took_a_share(system: &TestSystem, instances: usize, events: usize) {
    let series = [
        (
            Service::Registration,
            r#"events_published_total{event_type="user.registered.v1"}"#,
        ),
        (
            Service::Email,
            r#"events_consumed_total{queue="email.user-registered",outcome="done"}"#,
        ),
        (
            Service::Profile,
            r#"events_consumed_total{queue="profile.user-registered",outcome="done"}"#,
        ),
    ];
    let expected = f64::from(u32::try_from(events).expect("a burst fits in a u32"));
    for (service, series) in series {
        // The counters move just after the effect settling saw (the marker's last), so
        // wait for them to get there; then they must be there exactly.
        let shares: BTreeMap<usize, f64> = eventually(
            format!(
                "{instances} {} instances' {series} to add up to {events}",
                service.name()
            ),
            PATIENCE,
            async || {
                let mut shares = BTreeMap::new();
                for number in 0..instances {
                    shares.insert(number, system.ops_of(service, number).metric(series).await);
                }
                let total: f64 = shares.values().sum();
                if total >= expected - 0.5 {
                    Ok(shares)
                } else {
                    Err(format!("{shares:?}"))
                }
            },
        )
        .await;
        println!(
            "{instances} instance(s): {} {series}: {:?}",
            service.name(),
            shares.values().collect::<Vec<_>>()
        );
        assert!(
            shares.values().all(|&share| share > 0.0),
            "every {} instance did work: {shares:?}",
            service.name()
        );
        let total: f64 = shares.values().sum();
        assert!(
            (total - expected).abs() < 0.5,
            "{}: each event handled once among the instances ({shares:?}, not {events} in all)",
            service.name()
        );
    }
}
