use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use system_tests::system::{Service, TestSystem};

/// Every service answers `/healthz` and `/readyz`, and `/metrics` shows the work it did.
#[tokio::test(flavor = "multi_thread")]
async fn probes_answer_and_metrics_count_the_work() {
    let system = TestSystem::start().await;
    let user_id = system.register_ok("frances@example.org", "Frances").await;
    system.wait_for_profile(&user_id, Duration::from_secs(10)).await;
    system.smtp.wait_for(1, Duration::from_secs(10)).await;
    let bad = system.register("not-an-email", "Frances").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    for service in Service::ALL {
        let health = system.http.get(system.url(service, "/healthz")).send().await.expect("answers");
        assert_eq!(health.status(), StatusCode::OK, "{service:?} /healthz");
        let ready = system.http.get(system.url(service, "/readyz")).send().await.expect("answers");
        assert_eq!(ready.status(), StatusCode::OK, "{service:?} /readyz");
        let ready: Value = ready.json().await.expect("JSON");
        assert_eq!(ready["checks"]["database"], "up");
        assert_eq!(ready["checks"]["broker"], "up");
    }

    let metrics = |service| {
        let request = system.http.get(system.url(service, "/metrics"));
        async move { request.send().await.expect("answers").text().await.expect("text") }
    };
    let registration = metrics(Service::Registration).await;
    assert!(registration.contains(r#"http_requests_total{method="POST",route="/users",status="201"} 1"#), "{registration}");
    assert!(registration.contains(r#"http_requests_total{method="POST",route="/users",status="422"} 1"#), "{registration}");
    assert!(registration.contains(r#"events_published_total{event_type="user.registered.v1"} 1"#), "{registration}");
    assert!(registration.contains("http_request_duration_seconds_bucket"), "{registration}");
    for (service, queue) in [(Service::Email, "email.user-registered"), (Service::Profile, "profile.user-registered")] {
        let text = metrics(service).await;
        let done = format!(r#"events_consumed_total{{queue="{queue}",outcome="done"}} 1"#);
        assert!(text.contains(&done), "{service:?}: {text}");
        assert!(text.contains("event_handler_duration_seconds_bucket"), "{service:?}: {text}");
    }
}

/// SIGTERM: each service drains and exits 0, and the exit is logged.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_every_service_cleanly() {
    let mut system = TestSystem::start().await;
    let user_id = system.register_ok("donald@example.org", "Donald").await;
    system.wait_for_profile(&user_id, Duration::from_secs(10)).await;

    for service in Service::ALL {
        let process = system.process(service);
        let status = process.terminate(Duration::from_secs(15)).await;
        let log = process.log();
        assert!(status.is_some_and(|s| s.success()), "{service:?} must exit 0 on SIGTERM, got {status:?}:\n{log}");
        assert!(log.contains("shutdown signal received"), "{service:?} logs the drain:\n{log}");
    }
}
