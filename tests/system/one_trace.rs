use std::time::Duration;

use serde_json::json;
use system_tests::{otlp_sink::ReceivedSpan, system::TestSystem};

/// OTLP span kinds (opentelemetry.proto.trace.v1.Span.SpanKind).
const SERVER: i32 = 2;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// A caller's `traceparent` is continued through registration, the relay's publish and
/// both consumers: one trace, with each consumer's processing span a child of the publish
/// span, which is a child of the HTTP request span, which is a child of the caller's span.
#[tokio::test(flavor = "multi_thread")]
async fn one_trace_covers_the_request_the_publish_and_both_consumers() {
    let system = TestSystem::start().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");

    let response = system
        .post_user(
            &json!({"email": "tim@example.org", "display_name": "Tim"}),
            &[("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(response.status(), 201);
    let traceresponse = response.headers()["traceresponse"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        traceresponse.starts_with(&format!("00-{trace_id}-")),
        "the caller's trace continues: {traceresponse}"
    );

    let spans = system
        .otlp
        .wait_for(
            |spans| {
                let in_trace: Vec<&ReceivedSpan> =
                    spans.iter().filter(|s| s.trace_id == trace_id).collect();
                [
                    "email.user-registered process",
                    "profile.user-registered process",
                    "smtp send",
                ]
                .iter()
                .all(|name| in_trace.iter().any(|s| s.name == *name))
            },
            Duration::from_secs(20),
        )
        .await;
    let trace: Vec<ReceivedSpan> = spans
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    let find = |name: &str| {
        trace.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no {name:?} span in {:#?}",
                trace.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };

    let request = find("POST /users");
    assert_eq!(request.service_name, "registration");
    assert_eq!(request.kind, SERVER);
    assert_eq!(request.parent_span_id.as_deref(), Some(caller_span));
    assert_eq!(
        request.attributes.get("http.route").map(String::as_str),
        Some("/users")
    );
    assert_eq!(
        request
            .attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("201")
    );
    assert!(
        traceresponse.contains(&request.span_id),
        "traceresponse names the server span"
    );

    let publish = find("users publish");
    assert_eq!(publish.service_name, "registration");
    assert_eq!(publish.kind, PRODUCER);
    assert_eq!(
        publish.parent_span_id.as_deref(),
        Some(request.span_id.as_str())
    );
    assert_eq!(
        publish
            .attributes
            .get("messaging.system")
            .map(String::as_str),
        Some("rabbitmq")
    );

    for (service, name) in [
        ("email", "email.user-registered process"),
        ("profile", "profile.user-registered process"),
    ] {
        let process = find(name);
        assert_eq!(process.service_name, service);
        assert_eq!(process.kind, CONSUMER);
        assert_eq!(
            process.parent_span_id.as_deref(),
            Some(publish.span_id.as_str()),
            "{name} is a child of the publish span"
        );
        assert_eq!(
            process.attributes.get("messaging.message.id"),
            publish.attributes.get("messaging.message.id"),
            "{name} processed the message that was published"
        );
    }
    let smtp = find("smtp send");
    assert_eq!(
        smtp.parent_span_id.as_deref(),
        Some(find("email.user-registered process").span_id.as_str())
    );
}

/// Without a caller's `traceparent` the request starts a new trace, and the id in
/// `traceresponse` is the one the consumers' spans carry.
#[tokio::test(flavor = "multi_thread")]
async fn the_traceresponse_header_gives_the_trace_to_look_up() {
    let system = TestSystem::start().await;
    let response = system.register("barbara@example.org", "Barbara").await;
    let traceresponse = response.headers()["traceresponse"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let trace_id = traceresponse
        .split('-')
        .nth(1)
        .expect("00-trace-span-flags")
        .to_owned();

    let spans = system
        .otlp
        .wait_for(
            |spans| {
                let services: std::collections::BTreeSet<&str> = spans
                    .iter()
                    .filter(|s| s.trace_id == trace_id)
                    .map(|s| s.service_name.as_str())
                    .collect();
                services.len() == 3
            },
            Duration::from_secs(20),
        )
        .await;
    let services: std::collections::BTreeSet<String> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| s.service_name.clone())
        .collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["email", "profile", "registration"]
    );
}
