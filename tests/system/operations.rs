use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use system_tests::{
    binaries,
    eventually::{PATIENCE, eventually},
    process::{ServiceProcess, free_port},
    system::{Service, TestSystem},
};

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

/// A service whose database is not reachable yet answers from its first moment:
/// `/healthz` 200, `/readyz` 503 naming what it waits for, its API a 503 `starting`
/// problem with `Retry-After`; and SIGTERM stops it there, exit 0, instead of after the
/// database wait.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_waiting_for_its_database_answers_its_probes_and_stops_on_sigterm() {
    let binaries = binaries::directory().await;
    let log_dir = std::env::temp_dir().join(format!("starting-{}", uuid::Uuid::new_v4().simple()));
    // A port nothing listens on: the database "is not up yet".
    let nowhere = format!("postgres://postgres@127.0.0.1:{}/nothing", free_port());
    let http = reqwest::Client::new();
    for service in Service::ALL {
        let env = [("DATABASE_URL".to_owned(), nowhere.clone())];
        let binary = binaries.join(service.name());
        let mut process =
            ServiceProcess::spawn(&binary, service.name(), free_port(), &env, &log_dir)
                .expect("the binary starts");
        let base = process.base_url();
        let get = |path: &str| http.get(format!("{base}{path}")).send();

        let health = eventually(
            format!("{service:?} to answer /healthz"),
            PATIENCE,
            async || get("/healthz").await.ok(),
        )
        .await;
        assert_eq!(health.status(), StatusCode::OK, "{service:?}");
        let ready = get("/readyz").await.expect("an answer");
        assert_eq!(
            ready.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{service:?}"
        );
        let ready: Value = ready.json().await.expect("JSON");
        assert_eq!(ready["status"], "starting", "{service:?}: {ready}");
        assert_eq!(
            ready["checks"]["database"], "waiting",
            "{service:?}: {ready}"
        );
        let api = get("/openapi.json").await.expect("an answer");
        assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE, "{service:?}");
        assert_eq!(api.headers()["retry-after"], "1", "{service:?}");
        let problem: Value = api.json().await.expect("a problem document");
        assert_eq!(problem["code"], "starting", "{service:?}: {problem}");

        let status = process.terminate(Duration::from_secs(10)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{service:?} exits 0 on SIGTERM while starting, got {status:?}:\n{}",
            process.log()
        );
    }
    let _ = std::fs::remove_dir_all(&log_dir);
}
