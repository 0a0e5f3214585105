use std::time::Duration;

use system_tests::system::{Link, Options, Service, TestSystem};

/// How long the SMTP server is down: longer than the first three retry delays together
/// (200 + 400 + 800 ms), so a mail that fails at the start of the outage is retried
/// several times into it.
const OUTAGE: Duration = Duration::from_secs(3);

/// Attempts in all for the consumers in this test: the schedule (200 ms doubling, 6.2 s
/// over six attempts) outlasts the outage, which is what makes it a transient fault.
const RETRY_MAX_ATTEMPTS: u32 = 6;

/// How long the server refuses (`421`) before it becomes unreachable.
const REFUSING: Duration = Duration::from_millis(500);

/// The SMTP server goes down for three seconds in the middle of a burst, then comes back:
/// first it refuses (`421` to every command, as a server shutting down does), then it is
/// unreachable (every connection reset). The mails that failed meanwhile wait in the
/// delay queues (their records `pending`) and are sent when it is back: every accepted
/// sign-up gets exactly one mail, nothing is dead-lettered, no queue holds a message.
///
/// The server refuses before it vanishes because an abrupt cut can fall between the
/// server storing a mail and the client reading the `250`; the client must then send it
/// again (with the same `Message-ID`), which no SMTP client can avoid. Refusing first
/// closes every session cleanly, so the cut finds no transaction open and "exactly one"
/// is a fair demand.
#[tokio::test(flavor = "multi_thread")]
async fn an_smtp_outage_longer_than_the_first_retries_delays_the_mails_and_loses_none() {
    let options = Options {
        proxy_smtp: true,
        retry_max_attempts: Some(RETRY_MAX_ATTEMPTS),
        ..Options::default()
    };
    let system = TestSystem::start_with(options).await;
    let mut burst = system.start_burst();

    burst.wait_until_accepted(burst.plan().count / 3).await;
    let smtp = system.proxy(Service::Email, Link::Smtp);
    system.smtp.set_accepting(false);
    tokio::time::sleep(REFUSING).await;
    // Counted from here: a mail whose DATA ended just before the switch may still be
    // stored just after it, but none can be once the server has refused for a while.
    let mails_before = system.smtp.messages().len();
    smtp.set_enabled(false);
    tokio::time::sleep(OUTAGE - REFUSING).await;
    let mails_during = system.smtp.messages().len() - mails_before;
    smtp.set_enabled(true);
    system.smtp.set_accepting(true);
    let (_, effects) = system
        .effects()
        .after_burst(burst, "SMTP down for 3 s")
        .await;

    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
    assert_eq!(
        mails_during, 0,
        "no mail got through while the server was down"
    );
    let retried = system
        .ops(Service::Email)
        .metric(r#"events_consumed_total{queue="email.user-registered",outcome="retried"}"#)
        .await;
    println!("email.user-registered: {retried} deliveries retried");
    assert!(retried > 0.0, "the outage made deliveries fail and retry");
}
