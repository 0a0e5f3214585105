use std::time::Duration;

use reqwest::StatusCode;
use system_tests::{
    defaults,
    system::{Options, Service, TestSystem},
    tcp_proxy::TcpProxy,
};

/// With registration cut off from the broker, sign-ups are still accepted (the outbox
/// holds the event); when the broker is reachable again the relay publishes it and the
/// consumers act on it.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_written_while_the_broker_is_unreachable_is_published_when_it_returns() {
    let proxy = TcpProxy::start(defaults::AMQP_ADDR.parse().expect("address"))
        .await
        .expect("proxy starts");
    let options = Options {
        registration_amqp_url: Some(format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port())),
        ..Options::default()
    };
    let system = TestSystem::start_with(options).await;

    proxy.set_enabled(false);
    let readyz = system.url(Service::Registration, "/readyz");
    wait_for_status(&system.http, &readyz, StatusCode::SERVICE_UNAVAILABLE).await;

    let user_id = system.register_ok("alan@example.org", "Alan").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        system
            .scalar(
                Service::Registration,
                "select count(*) from outbox where published_at is null"
            )
            .await,
        1,
        "the event waits in the outbox"
    );
    let profile = system
        .http
        .get(system.url(Service::Profile, &format!("/profiles/{user_id}")))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        profile.status(),
        StatusCode::NOT_FOUND,
        "nothing was published"
    );

    proxy.set_enabled(true);
    system
        .wait_for_profile(&user_id, Duration::from_secs(20))
        .await;
    let mails = system.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        system
            .scalar(
                Service::Registration,
                "select count(*) from outbox where published_at is null"
            )
            .await,
        0,
        "the row is marked published"
    );
    wait_for_status(&system.http, &readyz, StatusCode::OK).await;
}

async fn wait_for_status(http: &reqwest::Client, url: &str, expected: StatusCode) {
    for _ in 0..200 {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() == expected)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered {expected}");
}
