use std::collections::BTreeSet;

use serde_json::json;
use system_tests::{
    eventually::PATIENCE,
    otlp_sink::ReceivedSpan,
    system::{Options, TestSystem, trace_id, traceresponse},
};

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
        .registration()
        .post_user(
            &json!({"email": "tim@example.org", "display_name": "Tim"}),
            &[("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(response.status(), 201);
    let traceresponse = traceresponse(&response);
    assert!(
        traceresponse.starts_with(&format!("00-{trace_id}-")),
        "the caller's trace continues: {traceresponse}"
    );

    let spans = system
        .otlp
        .wait_for(
            "every span this test looks at, in the caller's trace",
            |spans| {
                let in_trace: Vec<&ReceivedSpan> =
                    spans.iter().filter(|s| s.trace_id == trace_id).collect();
                // The publish span ends when the broker confirms, which can be after the
                // consumers are done: wait for it too, not only for the last consumer.
                let named = [
                    "POST /users",
                    "INSERT users",
                    "users publish",
                    "email.user-registered process",
                    "profile.user-registered process",
                    "smtp send",
                ]
                .iter()
                .all(|name| in_trace.iter().any(|s| s.name == *name));
                let inboxes = ["email", "profile"].iter().all(|service| {
                    in_trace
                        .iter()
                        .any(|s| s.name == "INSERT inbox" && s.service_name == *service)
                });
                named && inboxes
            },
            PATIENCE,
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
    for (name, attribute, value) in [
        (
            "users publish",
            "messaging.destination.name",
            system.topology().exchange(),
        ),
        (
            "users publish",
            "messaging.operation.type",
            "publish".to_owned(),
        ),
        (
            "users publish",
            "messaging.rabbitmq.destination.routing_key",
            "user.registered.v1".to_owned(),
        ),
        (
            "email.user-registered process",
            "messaging.operation.type",
            "process".to_owned(),
        ),
        (
            "email.user-registered process",
            "retry.attempt",
            "1".to_owned(),
        ),
        (
            "profile.user-registered process",
            "messaging.system",
            "rabbitmq".to_owned(),
        ),
    ] {
        assert_eq!(
            find(name).attributes.get(attribute),
            Some(&value),
            "{name} {attribute}"
        );
    }
    // Database work shows up as client spans under the span that did it.
    let insert_user = find("INSERT users");
    assert_eq!(
        insert_user.parent_span_id.as_deref(),
        Some(request.span_id.as_str())
    );
    assert_eq!(
        insert_user.attributes.get("db.system").map(String::as_str),
        Some("postgresql")
    );
    for (service, parent) in [
        ("email", "email.user-registered process"),
        ("profile", "profile.user-registered process"),
    ] {
        let inbox = trace
            .iter()
            .find(|s| s.name == "INSERT inbox" && s.service_name == service)
            .unwrap_or_else(|| panic!("no inbox span from {service}"));
        assert_eq!(
            inbox.parent_span_id.as_deref(),
            Some(find(parent).span_id.as_str())
        );
    }
    let smtp = find("smtp send");
    assert_eq!(
        smtp.parent_span_id.as_deref(),
        Some(find("email.user-registered process").span_id.as_str())
    );

    // Every span says which build and which process it comes from: one instance id per
    // service (a UUID, new at each start), and the workspace's version.
    let mut instances = BTreeSet::new();
    for span in &trace {
        let instance = span.resource.get("service.instance.id");
        let instance =
            instance.unwrap_or_else(|| panic!("{} has no service.instance.id", span.name));
        assert!(uuid::Uuid::parse_str(instance).is_ok(), "{instance}");
        instances.insert((span.service_name.clone(), instance.clone()));
        assert_eq!(
            span.resource.get("service.version").map(String::as_str),
            Some(env!("CARGO_PKG_VERSION")),
            "{}",
            span.name
        );
    }
    let services: BTreeSet<&String> = instances.iter().map(|(service, _)| service).collect();
    assert_eq!(services.len(), 3, "{instances:?}");
    assert_eq!(
        instances.len(),
        3,
        "one instance id per service: {instances:?}"
    );
}

/// Without a caller's `traceparent` the request starts a new trace, and the id in
/// `traceresponse` is the one the consumers' spans carry.
#[tokio::test(flavor = "multi_thread")]
async fn the_traceresponse_header_gives_the_trace_to_look_up() {
    let system = TestSystem::start().await;
    let trace_id = sign_up_and_trace(&system, "barbara@example.org", "Barbara").await;

    let spans = system
        .otlp
        .wait_for(
            "spans of all three services in the sign-up's trace",
            |spans| services_in(spans, &trace_id).len() == 3,
            PATIENCE,
        )
        .await;
    assert_eq!(
        services_in(&spans, &trace_id)
            .into_iter()
            .collect::<Vec<_>>(),
        ["email", "profile", "registration"]
    );
}

/// The services that sent spans of trace `trace_id`.
fn services_in<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> BTreeSet<&'a str> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| s.service_name.as_str())
        .collect()
}

/// With `CONSUMER_TRACE_MODE=link` each consumer starts its own trace whose processing
/// span links to the publish span, instead of being its child.
#[tokio::test(flavor = "multi_thread")]
async fn in_link_mode_consumers_start_a_new_trace_linked_to_the_publish() {
    let options = Options {
        extra_env: vec![("CONSUMER_TRACE_MODE".to_owned(), "link".to_owned())],
        ..Default::default()
    };
    let system = TestSystem::start_with(options).await;
    let trace_id = sign_up_and_trace(&system, "ken@example.org", "Ken").await;

    let spans = system
        .otlp
        .wait_for(
            "the publish span and both consumers' processing spans",
            |spans| {
                spans
                    .iter()
                    .any(|s| s.name == "users publish" && s.trace_id == trace_id)
                    && spans
                        .iter()
                        .filter(|s| s.name.ends_with("user-registered process"))
                        .count()
                        == 2
            },
            PATIENCE,
        )
        .await;
    let publish = spans
        .iter()
        .find(|s| s.name == "users publish" && s.trace_id == trace_id)
        .expect("the publish span");
    for process in spans
        .iter()
        .filter(|s| s.name.ends_with("user-registered process"))
    {
        assert_ne!(
            process.trace_id, trace_id,
            "{} starts its own trace",
            process.name
        );
        assert_eq!(process.parent_span_id, None, "{} is a root", process.name);
        assert_eq!(process.kind, CONSUMER);
        assert_eq!(
            process.links,
            [(publish.trace_id.clone(), publish.span_id.clone())],
            "{} links to the publish span",
            process.name
        );
    }
}

/// Signs a user up and returns the trace id its `traceresponse` names: the trace to
/// look the sign-up up by.
async fn sign_up_and_trace(system: &TestSystem, email: &str, display_name: &str) -> String {
    let response = system.registration().sign_up(email, display_name).await;
    trace_id(&traceresponse(&response))
}
