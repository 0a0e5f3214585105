//! An in-process OTLP/HTTP receiver that records every span it is sent.
//!
//! The services export traces with `opentelemetry-otlp` over HTTP/protobuf.
//! Pointing `OTEL_EXPORTER_OTLP_ENDPOINT` at this sink lets a system test assert
//! on real exported spans (one trace from the HTTP request through RabbitMQ to
//! the email and profile consumers) without running a collector or Jaeger.
//!
//! The sink serves `POST /v1/traces` as the [OTLP/HTTP specification] describes:
//! the body is an `ExportTraceServiceRequest` encoded as protobuf, the answer is
//! `200` with an encoded `ExportTraceServiceResponse`. Each span is flattened into
//! a [`ReceivedSpan`] with the ids as lowercase hex, the form Jaeger and the logs
//! show, so a test can compare them with a `traceparent` header directly.
//!
//! `POST /v1/metrics` and `POST /v1/logs` are answered `200` and otherwise
//! ignored, so that a service whose metrics or logs exporter is switched on by
//! mistake does not fill the test output with export errors.
//!
//! [OTLP/HTTP specification]: https://opentelemetry.io/docs/specs/otlp/#otlphttp

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The media type of OTLP/HTTP in its binary encoding.
const PROTOBUF: &str = "application/x-protobuf";

/// The largest export the sink accepts. axum's default of 2 MiB could be
/// reached by a large batch from the batch span processor; a rejected batch
/// would show up as missing spans, which is a confusing way to fail.
const MAX_EXPORT_BYTES: usize = 16 * 1024 * 1024;

/// The resource attribute that names the service (OpenTelemetry semantic
/// conventions), set by each service from its `OTEL_SERVICE_NAME`.
const SERVICE_NAME: &str = "service.name";

/// One exported span, flattened out of its resource and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The `service.name` resource attribute of the exporting process; empty
    /// if the resource did not carry one.
    pub service_name: String,
    /// Every resource attribute of the exporting process (`service.version`,
    /// `service.instance.id`, …), in string form.
    pub resource: BTreeMap<String, String>,
    /// The span name, e.g. `POST /users`.
    pub name: String,
    /// The trace id as 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id as 16 lowercase hex digits.
    pub span_id: String,
    /// The parent span id as 16 lowercase hex digits; `None` for a root span
    /// (OTLP sends an empty byte string there).
    pub parent_span_id: Option<String>,
    /// The span kind as its protobuf number; compare with
    /// `opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32`.
    pub kind: i32,
    /// The span attributes, each value in string form: strings as they are,
    /// numbers and booleans via `Display`, bytes as hex, arrays as `[a, b]` and
    /// key-value lists as `{k: v}`.
    pub attributes: BTreeMap<String, String>,
    /// The spans this one links to (not parents: a redriven or replayed message starts
    /// a new trace that points back to the original), as `(trace id, span id)` in hex.
    pub links: Vec<(String, String)>,
}

impl ReceivedSpan {
    /// The string form of attribute `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Flattens one protobuf span exported by the process `resource` describes.
    fn from_proto(resource: &BTreeMap<String, String>, span: &Span) -> Self {
        Self {
            service_name: resource.get(SERVICE_NAME).cloned().unwrap_or_default(),
            resource: resource.clone(),
            name: span.name.clone(),
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
            kind: span.kind,
            attributes: attribute_map(&span.attributes),
            links: span
                .links
                .iter()
                .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                .collect(),
        }
    }
}

/// What the server keeps: the spans, or only their number.
#[derive(Debug)]
struct Store {
    /// Every span received, in arrival order (none when `keep` is off). A `watch`
    /// channel is both the storage and the wake-up, so [`OtlpSink::wait_for`] cannot
    /// miss an export that lands between its check and its wait.
    spans: watch::Sender<Vec<ReceivedSpan>>,
    /// Spans received, kept or not.
    count: AtomicUsize,
    /// Whether spans are stored; the `otlp-sink` tool only counts, so that a long
    /// benchmark neither fills its memory nor pays for copying them.
    keep: bool,
}

/// A running OTLP/HTTP sink on `127.0.0.1` and a random free port.
///
/// Dropping it shuts the server down, so each test can own one without any
/// cleanup code.
#[derive(Debug)]
pub struct OtlpSink {
    /// Where the sink listens.
    addr: SocketAddr,
    /// What the server received.
    store: Arc<Store>,
    /// Cancelled on drop; the server shuts down gracefully on it.
    shutdown: CancellationToken,
}

impl OtlpSink {
    /// Binds `127.0.0.1:0` and starts serving in a background task.
    ///
    /// Must be called inside a Tokio runtime. A port chosen by the kernel lets
    /// many tests run in parallel, each with its own sink.
    ///
    /// # Errors
    ///
    /// Returns the I/O error if the listener cannot be bound.
    pub async fn start() -> io::Result<Self> {
        Self::start_on(0).await
    }

    /// Like [`OtlpSink::start`], on a chosen port of 127.0.0.1 (0 picks a free one); the
    /// `otlp-sink` tool uses 4318 to stand in for Jaeger.
    pub async fn start_on(port: u16) -> io::Result<Self> {
        Self::start_with(port, true).await
    }

    /// Like [`OtlpSink::start_on`], counting the spans ([`OtlpSink::span_count`])
    /// without keeping them: for the `otlp-sink` tool under load.
    pub async fn start_counting_on(port: u16) -> io::Result<Self> {
        Self::start_with(port, false).await
    }

    async fn start_with(port: u16, keep: bool) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Store {
            spans: watch::Sender::new(Vec::new()),
            count: AtomicUsize::new(0),
            keep,
        });
        let shutdown = CancellationToken::new();
        let server = axum::serve(listener, router(store.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tokio::spawn(async move {
            // axum documents that this future never fails; it ends once
            // `shutdown` is cancelled and the open connections have closed.
            let _ = server.await;
        });
        Ok(Self {
            addr,
            store,
            shutdown,
        })
    }

    /// The socket address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL `http://127.0.0.1:PORT`, without a path: the form
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` expects, since the exporter appends
    /// `/v1/traces` itself. (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` would need the
    /// full URL instead.)
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.spans.borrow().clone()
    }

    /// How many spans have been received, whether kept or only counted.
    pub fn span_count(&self) -> usize {
        self.store.count.load(Ordering::Relaxed)
    }

    /// The spans received so far whose trace id is `trace_id` (hex, compared
    /// without regard to case).
    pub fn spans_in_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.store
            .spans
            .borrow()
            .iter()
            .filter(|span| span.trace_id.eq_ignore_ascii_case(trace_id))
            .cloned()
            .collect()
    }

    /// Waits until `predicate` holds for the spans received so far and returns every
    /// span received by then; fails the test, naming `what` it waited for, if
    /// `timeout` passes first.
    ///
    /// Spans come in batches whenever the exporter flushes, so the predicate should
    /// describe the whole set you need (e.g. "a span named X and a span named Y in one
    /// trace") rather than a count.
    pub async fn wait_for(
        &self,
        what: &str,
        predicate: impl Fn(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        let mut spans = self.store.spans.subscribe();
        // The `Ref` inside is dropped at the end of this statement. `wait_for` can
        // only fail if the sender is gone, which cannot happen while `self` holds it.
        let waited = tokio::time::timeout(timeout, spans.wait_for(|spans| predicate(spans)))
            .await
            .map(drop);
        if waited.is_err() {
            let names: Vec<String> = self.spans().into_iter().map(|span| span.name).collect();
            crate::eventually::give_up(&what, timeout, Some(&format!("spans {names:?}")));
        }
        self.spans()
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The sink's routes: traces are recorded, metrics and logs are acknowledged.
fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/v1/traces", post(receive_traces))
        .route("/v1/metrics", post(acknowledge))
        .route("/v1/logs", post(acknowledge))
        .layer(DefaultBodyLimit::max(MAX_EXPORT_BYTES))
        .with_state(store)
}

/// `POST /v1/traces`: decodes the export, records its spans, answers `200`.
///
/// A body in another encoding gets `415` and one that does not decode gets
/// `400`, with the reason as text, so that a misconfigured exporter (OTLP/JSON,
/// gzip) shows the cause in its error log instead of silently losing spans.
async fn receive_traces(
    State(store): State<Arc<Store>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_protobuf(&headers) {
        let reason = format!("this OTLP sink only decodes {PROTOBUF} without compression");
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, reason).into_response();
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            let received = flatten(&request);
            store.count.fetch_add(received.len(), Ordering::Relaxed);
            if store.keep {
                store.spans.send_modify(|all| all.extend(received));
            }
            protobuf(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(error) => {
            let reason = format!("cannot decode ExportTraceServiceRequest: {error}");
            (StatusCode::BAD_REQUEST, reason).into_response()
        }
    }
}

/// `POST /v1/metrics` and `POST /v1/logs`: `200` with an empty body, which is
/// also what an empty `Export*ServiceResponse` encodes to, so the exporter
/// reads it as full success.
async fn acknowledge() -> Response {
    protobuf(Vec::new())
}

/// A `200` response carrying an encoded protobuf message.
fn protobuf(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
}

/// Whether the request says its body is uncompressed binary protobuf. A
/// missing `Content-Type` is given the benefit of the doubt.
fn is_protobuf(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| value.starts_with(PROTOBUF));
    let uncompressed = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| value.eq_ignore_ascii_case("identity"));
    content_type && uncompressed
}

/// Every span in the request, tagged with the service that exported it.
fn flatten(request: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    request
        .resource_spans
        .iter()
        .flat_map(|resource_spans| {
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|resource| attribute_map(&resource.attributes))
                .unwrap_or_default();
            resource_spans
                .scope_spans
                .iter()
                .flat_map(|scope_spans| &scope_spans.spans)
                .map(move |span| ReceivedSpan::from_proto(&resource, span))
        })
        .collect()
}

/// Attributes as a sorted map of string forms. A sorted map makes `Debug`
/// output stable, which keeps assertion messages readable and diffable.
fn attribute_map(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|attribute| {
            let value = value_to_string(attribute.value.as_ref());
            (attribute.key.clone(), value)
        })
        .collect()
}

/// The string form of an attribute value (see [`ReceivedSpan::attributes`]);
/// empty for a value that is not set.
fn value_to_string(value: Option<&AnyValue>) -> String {
    use any_value::Value;
    match value.and_then(|value| value.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(Value::BytesValue(bytes)) => hex(bytes),
        Some(Value::StringValueStrindex(index)) => index.to_string(),
        Some(Value::ArrayValue(array)) => {
            let items: Vec<String> = array
                .values
                .iter()
                .map(|item| value_to_string(Some(item)))
                .collect();
            format!("[{}]", items.join(", "))
        }
        Some(Value::KvlistValue(list)) => {
            let entries: Vec<String> = list
                .values
                .iter()
                .map(|entry| format!("{}: {}", entry.key, value_to_string(entry.value.as_ref())))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// Bytes as lowercase hex, two digits each: the W3C trace-context form of ids.
fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a `String` cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    const PATIENCE: Duration = Duration::from_secs(5);
    const TRACE_ID: [u8; 16] = [0xAB; 16];

    fn string_attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        }
    }

    fn span(name: &str, id: u8, parent: Option<u8>, kind: SpanKind) -> Span {
        Span {
            trace_id: TRACE_ID.to_vec(),
            span_id: vec![id; 8],
            parent_span_id: parent.map(|parent| vec![parent; 8]).unwrap_or_default(),
            name: name.to_owned(),
            kind: kind as i32,
            attributes: vec![
                string_attribute("http.request.method", "POST"),
                KeyValue {
                    key: "http.response.status_code".to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(201)),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    /// An export from the registration service: a server span and its child.
    fn export_request() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string_attribute(SERVICE_NAME, "registration")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span("POST /users", 1, None, SpanKind::Server),
                        span("users publish", 2, Some(1), SpanKind::Producer),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    async fn post(
        sink: &OtlpSink,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<reqwest::Response> {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", sink.endpoint()))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await?;
        Ok(response)
    }

    /// A protobuf export is acknowledged the OTLP way and its spans are
    /// recorded with hex ids, the service name, and string attributes.
    #[tokio::test]
    async fn an_exported_trace_is_recorded_span_by_span() -> anyhow::Result<()> {
        let sink = OtlpSink::start().await?;

        let response = post(
            &sink,
            "/v1/traces",
            PROTOBUF,
            export_request().encode_to_vec(),
        )
        .await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(PROTOBUF.as_bytes())
        );
        ExportTraceServiceResponse::decode(response.bytes().await?)?;

        let spans = sink
            .wait_for("two spans", |spans| spans.len() >= 2, PATIENCE)
            .await;
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let (root, child) = (&spans[0], &spans[1]);
        assert_eq!(root.service_name, "registration");
        assert_eq!(root.name, "POST /users");
        assert_eq!(root.trace_id, "ab".repeat(16));
        assert_eq!(root.span_id, "01".repeat(8));
        assert_eq!(root.parent_span_id, None);
        assert_eq!(root.kind, SpanKind::Server as i32);
        assert_eq!(root.attribute("http.request.method"), Some("POST"));
        assert_eq!(root.attribute("http.response.status_code"), Some("201"));
        assert_eq!(child.parent_span_id.as_deref(), Some(root.span_id.as_str()));
        assert_eq!(sink.spans_in_trace(&"AB".repeat(16)).len(), 2);
        assert!(sink.spans_in_trace(&"00".repeat(16)).is_empty());
        Ok(())
    }

    /// Metrics and logs are acknowledged and ignored.
    #[tokio::test]
    async fn metrics_and_logs_are_acknowledged_and_ignored() -> anyhow::Result<()> {
        let sink = OtlpSink::start().await?;
        for path in ["/v1/metrics", "/v1/logs"] {
            let response = post(&sink, path, PROTOBUF, vec![1, 2, 3]).await?;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
        assert!(sink.spans().is_empty());
        Ok(())
    }

    /// A body the sink cannot read is refused with a reason, not dropped silently.
    #[tokio::test]
    async fn an_unreadable_export_is_refused() -> anyhow::Result<()> {
        let sink = OtlpSink::start().await?;
        let json = post(&sink, "/v1/traces", "application/json", b"{}".to_vec()).await?;
        assert_eq!(json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let garbage = post(&sink, "/v1/traces", PROTOBUF, vec![0xFF; 7]).await?;
        assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
        assert!(sink.spans().is_empty());
        Ok(())
    }

    /// `wait_for` fails the test at the timeout, naming what it waited for.
    #[tokio::test]
    #[should_panic(expected = "waiting for any span; last seen: spans []")]
    async fn wait_for_fails_the_test_at_the_timeout() {
        let sink = OtlpSink::start().await.expect("the sink starts");
        assert_eq!(sink.endpoint(), format!("http://{}", sink.addr()));
        sink.wait_for(
            "any span",
            |spans| !spans.is_empty(),
            Duration::from_millis(50),
        )
        .await;
    }

    /// Every kind of attribute value has a readable string form.
    #[test]
    fn attribute_values_are_rendered_as_strings() {
        use any_value::Value;
        let value = |value| Some(AnyValue { value: Some(value) });
        let cases = [
            (None, ""),
            (value(Value::BoolValue(true)), "true"),
            (value(Value::DoubleValue(1.5)), "1.5"),
            (value(Value::BytesValue(vec![0x0A, 0xFF])), "0aff"),
            (
                value(Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::IntValue(1)),
                        },
                        AnyValue {
                            value: Some(Value::StringValue("x".to_owned())),
                        },
                    ],
                })),
                "[1, x]",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(value_to_string(input.as_ref()), expected, "{input:?}");
        }
    }
}
