use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use system_tests::system::{Service, TestSystem};

/// Every service answers `/healthz` and `/readyz`, and `/metrics` shows the work it did
/// and the process' own figures.
#[tokio::test(flavor = "multi_thread")]
async fn probes_answer_and_metrics_count_the_work() {
    let system = TestSystem::start().await;
    system
        .sign_up_and_wait("frances@example.org", "Frances")
        .await;
    let bad = system
        .registration()
        .sign_up("not-an-email", "Frances")
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    for service in Service::ALL {
        let ops = system.ops(service);
        let health = ops.get("/healthz").await;
        assert_eq!(health.status(), StatusCode::OK, "{service:?} /healthz");
        let ready = ops.get("/readyz").await;
        assert_eq!(ready.status(), StatusCode::OK, "{service:?} /readyz");
        let ready: Value = ready.json().await.expect("JSON");
        assert_eq!(ready["checks"]["database"], "up");
        assert_eq!(ready["checks"]["broker"], "up");
    }

    let registration = system
        .ops(Service::Registration)
        .wait_for_metrics(&[
            r#"http_requests_total{method="POST",route="/users",status="201"} 1"#,
            r#"http_requests_total{method="POST",route="/users",status="422"} 1"#,
            r#"events_published_total{event_type="user.registered.v1"} 1"#,
            "http_request_duration_seconds_bucket",
        ])
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
        system
            .ops(service)
            .wait_for_metrics(&[
                &done,
                "event_handler_duration_seconds_bucket",
                "event_lag_seconds_bucket",
            ])
            .await;
    }
    // The process' own figures, from /proc, on every service.
    for service in Service::ALL {
        system
            .ops(service)
            .wait_for_metrics(&[
                "process_resident_memory_bytes ",
                "process_cpu_seconds_total ",
                "process_open_fds ",
                "process_threads ",
            ])
            .await;
    }
}

/// SIGTERM: each service drains and exits 0, and the exit is logged, with no line at
/// `ERROR` or `WARN` from start to exit: a clean stop is not something an operator should
/// have to look at (an `ERROR` always should be).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_every_service_cleanly() {
    let mut system = TestSystem::start().await;
    system
        .sign_up_and_wait("donald@example.org", "Donald")
        .await;

    for service in Service::ALL {
        let process = system.processes().process(service);
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
        let alarming: Vec<&str> = log
            .lines()
            .filter(|line| {
                line.contains(r#""level":"ERROR""#) || line.contains(r#""level":"WARN""#)
            })
            .collect();
        assert!(
            alarming.is_empty(),
            "{service:?} logged errors or warnings in a clean run and stop:\n{}",
            alarming.join("\n")
        );
    }
}
