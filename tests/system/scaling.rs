use system_tests::{
    burst::{Burst, BurstPlan},
    effects::report,
    system::{Options, Service, TestSystem},
};
use tokio::time::Instant;

/// Each consumer instance's prefetch (and so its pool: prefetch + 4 connections): half
/// the harness's, so that two instances of each take about as much of the shared
/// PostgreSQL as one instance does in the other tests.
const CONSUMER_PREFETCH: u16 = system_tests::system::CONSUMER_PREFETCH / 2;

/// Two instances of every service share one database and one queue per service: the
/// burst goes to both registrations, whose relays split the outbox, and two email and
/// two profile consumers compete for the deliveries. Both of each pair do work, and no
/// event is published twice, consumed twice or has two effects: every accepted sign-up
/// has exactly one profile row and one mail.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_of_every_service_share_the_work_without_duplicates() {
    let started = Instant::now();
    let options = Options {
        extra_env: vec![(
            "CONSUMER_PREFETCH".to_owned(),
            CONSUMER_PREFETCH.to_string(),
        )],
        ..Options::default()
    };
    let mut system = TestSystem::start_with(options).await;
    for service in Service::ALL {
        system.add_instance(service).await;
    }
    let plan = BurstPlan::standard();
    let count = plan.count;

    let outcome = Burst::start(system.burst_target(), plan).finish().await;
    outcome.assert_all_accepted(count);
    let effects = system.settle(&outcome.accepted).await;
    report("two instances of each service", &outcome, &effects, started);

    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
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
    for (service, series) in series {
        let first = system.metric(service, 0, series).await;
        let second = system.metric(service, 1, series).await;
        println!("{}: {first} + {second} ({series})", service.name());
        assert!(
            first > 0.0 && second > 0.0,
            "both {} instances did work: {first} and {second}",
            service.name()
        );
        let expected = f64::from(u32::try_from(count).expect("a burst fits in a u32"));
        assert!(
            (first + second - expected).abs() < 0.5,
            "{}: each event handled once between the two ({first} + {second}, not {count})",
            service.name()
        );
    }
}
