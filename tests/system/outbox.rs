use std::time::Duration;

use reqwest::StatusCode;
use system_tests::{
    defaults,
    eventually::PATIENCE,
    system::{Options, Service, TestSystem},
    tcp_proxy::TcpProxy,
};

/// The outbox rows the relay has not published yet.
const UNPUBLISHED: &str = "select count(*) from outbox where published_at is null";

/// How long registration is left cut off with the event in its outbox before the test
/// looks: the relay is woken by the insert and sweeps every 500 ms in tests, so a relay
/// that wrongly dropped or "published" the row would have done so by then.
const CUT_OFF: Duration = Duration::from_secs(1);

/// With registration cut off from the broker, sign-ups are still accepted (the outbox
/// holds the event); when the broker is reachable again the relay publishes it and the
/// consumers act on it.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_written_while_the_broker_is_unreachable_is_published_when_it_returns() {
    let proxy = TcpProxy::start(defaults::AMQP_ADDR.parse().expect("address"))
        .await
        .expect("proxy starts");
    let options = Options {
        amqp_urls: vec![(
            Service::Registration,
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port()),
        )],
        ..Options::default()
    };
    let system = TestSystem::start_with(options).await;
    let registration_ops = system.ops(Service::Registration);

    proxy.set_enabled(false);
    registration_ops
        .wait_for_status("/readyz", StatusCode::SERVICE_UNAVAILABLE)
        .await;

    let user_id = system
        .registration()
        .sign_up_ok("alan@example.org", "Alan")
        .await;
    tokio::time::sleep(CUT_OFF).await;
    assert_eq!(
        system
            .effects()
            .scalar(Service::Registration, UNPUBLISHED)
            .await,
        1,
        "the event waits in the outbox"
    );
    assert_eq!(
        system.profiles().get(&user_id).await.status(),
        StatusCode::NOT_FOUND,
        "nothing was published"
    );

    proxy.set_enabled(true);
    system.profiles().wait_for(&user_id).await;
    let mails = system.smtp.wait_for(1, PATIENCE).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        system
            .effects()
            .scalar(Service::Registration, UNPUBLISHED)
            .await,
        0,
        "the row is marked published"
    );
    registration_ops
        .wait_for_status("/readyz", StatusCode::OK)
        .await;
}
