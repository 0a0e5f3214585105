use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use system_tests::system::{Service, TestSystem};

/// Every service answers `/healthz` and `/readyz`, and `/metrics` shows the work it did.
#[tokio::test(flavor = "multi_thread")]
async fn probes_answer_and_metrics_count_the_work() {
    let system = TestSystem::start().await;
    let user_id = system.register_ok("frances@example.org", "Frances").await;
    system
        .wait_for_profile(&user_id, Duration::from_secs(10))
        .await;
    system.smtp.wait_for(1, Duration::from_secs(10)).await;
    let bad = system.register("not-an-email", "Frances").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    for service in Service::ALL {
        let health = system
            .http
            .get(system.url(service, "/healthz"))
            .send()
            .await
            .expect("answers");
        assert_eq!(health.status(), StatusCode::OK, "{service:?} /healthz");
        let ready = system
            .http
            .get(system.url(service, "/readyz"))
            .send()
            .await
            .expect("answers");
        assert_eq!(ready.status(), StatusCode::OK, "{service:?} /readyz");
        let ready: Value = ready.json().await.expect("JSON");
        assert_eq!(ready["checks"]["database"], "up");
        assert_eq!(ready["checks"]["broker"], "up");
    }

    let registration = wait_for_metrics(
        &system,
        Service::Registration,
        &[
            r#"http_requests_total{method="POST",route="/users",status="201"} 1"#,
            r#"http_requests_total{method="POST",route="/users",status="422"} 1"#,
            r#"events_published_total{event_type="user.registered.v1"} 1"#,
            "http_request_duration_seconds_bucket",
        ],
    )
    .await;
    assert!(
        !registration.contains("/healthz"),
        "probes are not counted as API traffic"
    );
    for (service, queue) in [
        (Service::Email, "email.user-registered"),
        (Service::Profile, "profile.user-registered"),
    ] {
        let done = format!(r#"events_consumed_total{{queue="{queue}",outcome="done"}} 1"#);
        wait_for_metrics(
            &system,
            service,
            &[
                &done,
                "event_handler_duration_seconds_bucket",
                "event_lag_seconds_bucket",
            ],
        )
        .await;
    }
}

/// Scrapes `/metrics` until every expected line is there (the counters move right after
/// the effect the test waited for); panics with the last scrape after a few seconds.
async fn wait_for_metrics(system: &TestSystem, service: Service, expected: &[&str]) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        let response = system
            .http
            .get(system.url(service, "/metrics"))
            .send()
            .await
            .expect("answers");
        text = response.text().await.expect("text");
        if expected.iter().all(|line| text.contains(line)) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service:?} /metrics lacks some of {expected:?}:\n{text}");
}

/// SIGTERM: each service drains and exits 0, and the exit is logged.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_every_service_cleanly() {
    let mut system = TestSystem::start().await;
    let user_id = system.register_ok("donald@example.org", "Donald").await;
    system
        .wait_for_profile(&user_id, Duration::from_secs(10))
        .await;

    for service in Service::ALL {
        let process = system.process(service);
        let status = process.terminate(Duration::from_secs(15)).await;
        let log = process.log();
        assert!(
            status.is_some_and(|s| s.success()),
            "{service:?} must exit 0 on SIGTERM, got {status:?}:\n{log}"
        );
        assert!(
            log.contains("shutdown signal received"),
            "{service:?} logs the drain:\n{log}"
        );
    }
}
