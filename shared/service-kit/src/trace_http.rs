use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use opentelemetry::{
    global,
    trace::{SpanContext, TraceContextExt},
};
use opentelemetry_http::HeaderExtractor;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C Trace Context response header: `00-<trace-id>-<span-id>-<flags>`. Users paste
/// the trace id from it into Jaeger.
pub const TRACERESPONSE: &str = "traceresponse";

/// Middleware: one server span per request, named `METHOD /route/template` (low
/// cardinality, so Jaeger groups requests sensibly), continuing the caller's trace when a
/// `traceparent` header is present, and answering with `traceresponse`. Also counts the
/// request and records its latency in Prometheus, and logs the requests answered with an
/// error (the others at debug).
///
/// Add it with `Router::layer(axum::middleware::from_fn(trace_http::layer))` on the API
/// routes; the matched route is only known there.
pub async fn layer(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let parent = global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        trace_id = Empty,
        span_id = Empty,
    );
    // Must happen before the span is entered or its context is read.
    let _ = span.set_parent(parent);
    let span_context = span.context().span().span_context().clone();
    span.record("trace_id", span_context.trace_id().to_string());
    span.record("span_id", span_context.span_id().to_string());

    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    // One log line per request or event: a request that did what it was asked is in the
    // handler's own line (e.g. "user registered"), its span and the metrics; the
    // middleware adds a line at info only for an error answer.
    let latency_ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| {
        if status.is_client_error() || status.is_server_error() {
            tracing::info!(latency_ms, "request finished");
        } else {
            tracing::debug!(latency_ms, "request finished");
        }
    });

    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());

    if let Ok(value) = HeaderValue::from_str(&traceresponse(&span_context)) {
        response.headers_mut().insert(TRACERESPONSE, value);
    }
    response
}

/// HELP texts of the request metrics [`layer`] records; called once, when the routes are
/// added ([`crate::app::App::api`]).
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by method and route template."
    );
}

fn traceresponse(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}
