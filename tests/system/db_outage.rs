use std::time::Duration;

use system_tests::system::{Link, Options, Service, TestSystem};

/// How long each service's database stays unreachable.
const OUTAGE: Duration = Duration::from_secs(1);

/// Attempts in all for the consumers in this test: a handler that hits the outage fails
/// at once (the pool cannot connect), so the retry schedule (200 ms doubling: 6.2 s over
/// six attempts) must outlast the outage with room to spare for a busy machine.
const RETRY_MAX_ATTEMPTS: u32 = 6;

/// How long a handler waits for a database connection (`DATABASE_ACQUIRE_TIMEOUT_MS`).
/// Well under the outage, so that every delivery arriving during a consumer's cut fails
/// and is retried, rather than waiting the outage out (the default 5 s would hide it):
/// the retries the test asserts then do not hang on a query being in flight at the very
/// moment of the cut.
const ACQUIRE_TIMEOUT_MS: u64 = 250;

/// Each service's database connections are cut during a burst, one service after the
/// other, each for a second: registration's (sign-ups answer 503 and are retried with
/// their `Idempotency-Key`; the relay waits for the next sweep), then email's (handlers
/// fail and are retried through the delay queues; a mail already sent is recorded on a
/// fresh connection), then profile's. Every accepted sign-up still has exactly one
/// profile row and one mail, nothing was dead-lettered and no queue holds a message; and
/// each consumer felt its cut (deliveries retried, or for email possibly sent mails
/// recorded again) and dead-lettered nothing.
#[tokio::test(flavor = "multi_thread")]
async fn database_connections_cut_in_each_service_during_a_burst_lose_and_duplicate_nothing() {
    let options = Options {
        proxy_postgres: true,
        retry_max_attempts: Some(RETRY_MAX_ATTEMPTS),
        extra_env: vec![(
            "DATABASE_ACQUIRE_TIMEOUT_MS".to_owned(),
            ACQUIRE_TIMEOUT_MS.to_string(),
        )],
        ..Options::default()
    };
    let system = TestSystem::start_with(options).await;
    let mut burst = system.start_burst();
    let count = burst.plan().count;

    for (step, service) in [Service::Registration, Service::Email, Service::Profile]
        .into_iter()
        .enumerate()
    {
        burst.wait_until_accepted(count * (step + 1) / 4).await;
        let proxy = system.proxy(service, Link::Postgres);
        proxy.set_enabled(false);
        tokio::time::sleep(OUTAGE).await;
        proxy.set_enabled(true);
    }
    let (outcome, effects) = system
        .effects()
        .after_burst(burst, "database cut in each service")
        .await;

    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
    assert!(
        outcome.retried_requests > 0,
        "registration's outage was seen by the sign-ups (503s retried)"
    );
    // Each consumer's cut comes while the burst still has a quarter or more of its
    // sign-ups to make, paced over seconds, so its events keep arriving during the cut.
    // A handler that gets no connection within the acquire timeout sends its delivery to
    // a delay queue (`retried`). The email service may instead be committing a batch of
    // mails already sent when the cut comes: it then records them again on a fresh
    // connection, retrying until the database is back, while the next deliveries wait
    // (`welcome_mails_recorded_again_total`). Either way the cut was felt.
    for service in [Service::Email, Service::Profile] {
        let queue = format!("{}.user-registered", service.name());
        let series = |outcome: &str| {
            format!(r#"events_consumed_total{{queue="{queue}",outcome="{outcome}"}}"#)
        };
        let ops = system.ops(service);
        let retried = ops.metric(&series("retried")).await;
        let dead_lettered = ops.metric(&series("dead_lettered")).await;
        let recorded_again = match service {
            Service::Email => ops.metric("welcome_mails_recorded_again_total").await,
            _ => 0.0,
        };
        println!(
            "{queue}: {retried} deliveries retried, {dead_lettered} dead-lettered, \
             {recorded_again} sent mails recorded again"
        );
        assert!(
            retried + recorded_again > 0.0,
            "{queue}: the database cut made deliveries retry (or sent mails be recorded again)"
        );
        assert_eq!(
            dead_lettered, 0.0,
            "{queue}: the retries outlasted the cut, so nothing was dead-lettered"
        );
    }
}
