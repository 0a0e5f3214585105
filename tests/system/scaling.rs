use system_tests::{
    eventually::{PATIENCE, eventually},
    system::{Options, Service, TestSystem},
};

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
    let options = Options {
        extra_env: vec![(
            "CONSUMER_PREFETCH".to_owned(),
            CONSUMER_PREFETCH.to_string(),
        )],
        ..Options::default()
    };
    let mut system = TestSystem::start_with(options).await;
    for service in Service::ALL {
        system.processes().add_instance(service).await;
    }
    let burst = system.start_burst();
    let count = burst.plan().count;

    let (_, effects) = system
        .effects()
        .after_burst(burst, "two instances of each service")
        .await;

    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
    // Settling passed a marker sign-up through the system: one more event for each.
    let events = count + system.effects().markers_passed();
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
        let (first, second) = eventually(
            format!(
                "{} instances' {series} to add up to {events}",
                service.name()
            ),
            PATIENCE,
            async || {
                let first = system.ops_of(service, 0).metric(series).await;
                let second = system.ops_of(service, 1).metric(series).await;
                if first + second >= expected - 0.5 {
                    Ok((first, second))
                } else {
                    Err(format!("{first} + {second}"))
                }
            },
        )
        .await;
        println!("{}: {first} + {second} ({series})", service.name());
        assert!(
            first > 0.0 && second > 0.0,
            "both {} instances did work: {first} and {second}",
            service.name()
        );
        assert!(
            (first + second - expected).abs() < 0.5,
            "{}: each event handled once between the two ({first} + {second}, not {events})",
            service.name()
        );
    }
}
