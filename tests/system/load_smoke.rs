//! The load generator against a real system: 200 sign-ups, 16 at a time, every one
//! accepted and complete end to end, and a report whose figures agree with each other.
//! A smoke test of the tool (it must keep working as the services change), not a
//! measurement: timed figures come from the benchmark, never from a test.

use std::time::Duration;

use system_tests::{load, system::TestSystem};

#[tokio::test(flavor = "multi_thread")]
async fn the_load_generator_sees_every_sign_up_through() {
    let system = TestSystem::start().await;
    let plan = load::Plan {
        count: Some(200),
        concurrency: 16,
        complete_timeout: Duration::from_secs(60),
        ..load::Plan::new(system.load_targets())
    };

    let report = load::run(&plan).await.expect("the load generator runs");
    println!("{report}");

    assert_eq!(report.sent, 200, "{report}");
    assert_eq!(report.accepted, 200, "every sign-up accepted: {report}");
    assert!(report.rejected.is_empty(), "{report}");
    assert_eq!(report.completed, 200, "every sign-up complete: {report}");
    assert!(report.all_complete() && !report.timed_out, "{report}");
    assert_eq!((report.profile_missing, report.mail_missing), (0, 0));
    assert_eq!(
        report.estimated_timestamps, 0,
        "the services give timestamps"
    );
    for latency in [report.post, report.profile, report.mail] {
        assert_eq!(latency.count, 200, "{report}");
        assert!(latency.p50_ms <= latency.p99_ms && latency.p99_ms <= latency.max_ms);
        assert!(latency.p50_ms > 0.0, "{report}");
    }
    assert!(
        report.profile.p50_ms >= report.post.p50_ms * 0.5,
        "a profile is written after its POST was sent: {report}"
    );
    assert!(report.end_to_end_per_second > 0.0 && report.post_per_second > 0.0);
    assert!(
        report.end_to_end_seconds >= report.post_seconds * 0.5,
        "the last completion comes after most answers: {report}"
    );
    assert!(report.generator.http_requests >= 3 * 200, "{report}");

    let summary: serde_json::Value =
        serde_json::from_str(&report.summary_line()).expect("the summary is JSON");
    assert_eq!(summary["summary"]["completed"], 200);

    // Exactly one mail per sign-up reached the SMTP server.
    let mails = system.smtp.messages();
    let load_mails = mails
        .iter()
        .filter(|mail| mail.recipient().ends_with("@load.example.org"))
        .count();
    assert_eq!(load_mails, 200);
}
