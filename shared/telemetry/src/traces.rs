use std::time::Duration;

use opentelemetry::{KeyValue, global, trace::TracerProvider as _};
use opentelemetry_otlp::WithHttpConfig as _;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracer, SdkTracerProvider},
};

use crate::{TelemetryError, otlp_http::OtlpHttpClient};

/// How long shutdown may spend flushing the last spans. Bounded so that an unreachable
/// collector cannot keep a terminating pod alive past its grace period.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps the tracer provider alive and flushes it on [`TracesGuard::shutdown`].
///
/// Dropping the guard is not enough: the tracing layer holds its own clone of the provider,
/// so the batch of spans still in memory would be lost. `main` calls `shutdown` after the
/// last task has finished.
#[derive(Debug)]
pub struct TracesGuard {
    provider: SdkTracerProvider,
}

impl TracesGuard {
    /// Exports the spans still buffered and stops the exporter. Blocking: call it through
    /// `tokio::task::spawn_blocking`, never on a runtime worker.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            // Logging is the only thing left to do; the process is exiting anyway.
            tracing::warn!(error = %error, "could not flush traces at shutdown");
        }
    }
}

/// Builds the tracer provider and installs it, and the W3C propagator, globally.
///
/// The global propagator matters: its default is a no-op, and without this call no
/// `traceparent` would ever be injected into HTTP responses or AMQP headers.
pub(crate) fn init(service_name: &'static str) -> Result<(TracesGuard, SdkTracer), TelemetryError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    if exporting_enabled() {
        // No endpoint or protocol in code: the exporter reads OTEL_EXPORTER_OTLP_* itself.
        // Only http/protobuf is compiled in (see docs/decisions on why not gRPC), over our
        // own client, which also speaks https (crate::otlp_http).
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OtlpHttpClient::from_env()?)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    install_propagator();
    global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer(service_name);
    Ok((TracesGuard { provider }, tracer))
}

/// Installs the W3C Trace Context propagator globally: what turns a span's context into
/// `traceparent`/`tracestate` and back, in HTTP headers, AMQP headers and outbox rows.
///
/// [`crate::init`] calls it; a one-shot tool that sends messages without exporting spans
/// (`registration replay`) calls it alone, since the default global propagator is a
/// no-op that would send no trace context at all.
pub fn install_propagator() {
    global::set_text_map_propagator(TraceContextPropagator::new());
}

/// What every span of this process says about where it comes from: `service.name`,
/// `service.version` (the workspace's version, which every binary shares) and
/// `service.instance.id` (new at each start, so that two instances of one service, or
/// one before and after a restart, can be told apart in Jaeger).
///
/// What `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` set wins: the builder's own
/// attributes would override them, so each fallback is only added when they do not.
fn resource(service_name: &'static str) -> Resource {
    let from_env = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let set = |key: &str| {
        from_env
            .split(',')
            .any(|pair| pair.trim().starts_with(&format!("{key}=")))
    };
    let mut builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() && !set("service.name") {
        builder = builder.with_service_name(service_name);
    }
    if !set("service.version") {
        builder =
            builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    if !set("service.instance.id") {
        let instance = uuid::Uuid::new_v4().to_string();
        builder = builder.with_attribute(KeyValue::new("service.instance.id", instance));
    }
    builder.build()
}

/// The specification's switches for turning export off. Spans are still created (the
/// trace ids in logs and `traceresponse` headers need them), they are just not sent.
fn exporting_enabled() -> bool {
    let var = |name| std::env::var(name).unwrap_or_default().to_ascii_lowercase();
    var("OTEL_SDK_DISABLED") != "true" && var("OTEL_TRACES_EXPORTER") != "none"
}

/// Which spans become trace spans: ours and the libraries' at INFO and above, except
/// lapin's connection-lifetime span (it would be a root span as long as the process) and
/// the exporter's own HTTP client (exporting spans about exporting spans).
pub(crate) fn filter() -> tracing_subscriber::filter::Targets {
    use tracing::level_filters::LevelFilter;
    tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("lapin", LevelFilter::OFF)
        .with_target("amq_protocol", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("sqlx", LevelFilter::OFF)
}
