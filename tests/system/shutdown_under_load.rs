use std::time::Duration;

use system_tests::system::{Service, TestSystem};
use tokio::time::Instant;

/// How long a service may take to drain and exit after SIGTERM: its own limit
/// (`SHUTDOWN_TIMEOUT_SECS`, 20 s by default) plus time to flush and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Each service gets SIGTERM while a burst goes on (email, then profile, then
/// registration), exits 0, and is started again. A consumer finishes and acks what it
/// was handling and its prefetched messages go back to the queue; registration finishes
/// its requests and the burst retries the refused ones. Nothing is lost and, since no
/// work is abandoned half-way, nothing is duplicated either: every accepted sign-up has
/// exactly one profile row and one mail, nothing is dead-lettered, no queue holds a
/// message.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_finishes_or_returns_every_in_flight_message() {
    let mut system = TestSystem::start().await;
    let mut burst = system.start_burst();
    let count = burst.plan().count;

    for (step, service) in [Service::Email, Service::Profile, Service::Registration]
        .into_iter()
        .enumerate()
    {
        burst.wait_until_accepted(count * (step + 1) / 4).await;
        let processes = system.processes();
        let stopping = Instant::now();
        let status = processes.terminate(service, 0, EXIT_TIMEOUT).await;
        println!(
            "{} exited with {status:?} {:.1?} after SIGTERM",
            service.name(),
            stopping.elapsed()
        );
        let log = processes.process(service).log();
        assert!(
            status.is_some_and(|status| status.success()),
            "{} exits 0 on SIGTERM under load, got {status:?}:\n{log}",
            service.name()
        );
        assert!(
            log.contains("drained"),
            "{} logs that it drained:\n{log}",
            service.name()
        );
        processes.restart(service, 0).await;
    }
    let (_, effects) = system
        .effects()
        .after_burst(burst, "SIGTERM to each service")
        .await;

    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
}
