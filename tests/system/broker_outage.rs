use std::time::Duration;

use system_tests::{
    eventually::poll,
    system::{Link, Options, Service, TestSystem},
};

/// How long each cut keeps the broker unreachable: long enough that every service sees
/// its connection fail and its reconnect attempts fail too, short enough for the suite.
const OUTAGE: Duration = Duration::from_secs(1);

/// How long a service may take to open a new broker connection after the last cut: its
/// reconnect backoff doubles up to 10 s (jittered) while sessions keep failing young.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// The broker connections of all three services (the relay that publishes, both
/// consumers) are cut three times during a burst of sign-ups, each time for a second.
/// Afterwards every accepted sign-up has exactly one profile row and one mail, nothing
/// was dead-lettered and no queue holds a message: in-flight deliveries whose acks were
/// lost are redelivered and absorbed by the inboxes, and events whose publish was not
/// confirmed stay in the outbox until the relay is back. Each service opens a new broker
/// connection after the last cut: none is left hanging on a dead one.
#[tokio::test(flavor = "multi_thread")]
async fn broker_connections_cut_three_times_during_a_burst_lose_and_duplicate_nothing() {
    let options = Options {
        proxy_amqp: true,
        ..Options::default()
    };
    let system = TestSystem::start_with(options).await;
    let mut burst = system.start_burst();
    let count = burst.plan().count;

    for cut in 1..=3 {
        burst.wait_until_accepted(count * cut / 4).await;
        for service in Service::ALL {
            system.proxy(service, Link::Amqp).set_enabled(false);
        }
        tokio::time::sleep(OUTAGE).await;
        for service in Service::ALL {
            system.proxy(service, Link::Amqp).set_enabled(true);
        }
    }
    let connections: Vec<u64> = Service::ALL
        .iter()
        .map(|service| system.proxy(*service, Link::Amqp).connections_accepted())
        .collect();
    for (service, before) in Service::ALL.into_iter().zip(connections) {
        assert_reconnects(&system, service, before).await;
    }
    let (_, effects) = system
        .effects()
        .after_burst(burst, "broker cut three times")
        .await;

    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
    let failed_publishes = system
        .ops(Service::Registration)
        .metric(r#"events_publish_failed_total{event_type="user.registered.v1"}"#)
        .await;
    println!("registration: {failed_publishes} publishes failed and were retried");
    for service in [Service::Email, Service::Profile] {
        let queue = format!("{}.user-registered", service.name());
        let mut counts = Vec::new();
        for outcome in ["done", "retried", "requeued"] {
            let series = format!(r#"events_consumed_total{{queue="{queue}",outcome="{outcome}"}}"#);
            counts.push(format!(
                "{outcome} {}",
                system.ops(service).metric(&series).await
            ));
        }
        println!("{queue}: {}", counts.join(", "));
    }
    for service in Service::ALL {
        let connections = system.proxy(service, Link::Amqp).connections_accepted();
        assert!(
            connections > 3,
            "{} reconnected after each cut ({connections} connections)",
            service.name()
        );
    }
}

/// Waits until `service` has opened more than `before` broker connections through its
/// proxy, `before` being the count when the last cut ended (the cut killed the connection
/// it had, so a service that recovers must open another); fails the test with its
/// readiness and the end of its log if it does not.
async fn assert_reconnects(system: &TestSystem, service: Service, before: u64) {
    let proxy = system.proxy(service, Link::Amqp);
    let reconnected = poll(RECONNECT_PATIENCE, async || {
        proxy.connections_accepted() > before
    })
    .await;
    if reconnected.is_ok() {
        return;
    }
    let readiness = match system.ops(service).try_get("/readyz").await {
        Ok(response) => format!(
            "{} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ),
        Err(error) => error.to_string(),
    };
    let log = std::fs::read_to_string(system.log_dir().join(format!("{}.log", service.name())))
        .unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(8).collect();
    panic!(
        "{} opened no broker connection within {RECONNECT_PATIENCE:?} after the last cut: \
         its broker session never ended, so it never reconnected. /readyz says: \
         {readiness}\nlast log lines (newest first):\n{}",
        service.name(),
        tail.join("\n")
    );
}
