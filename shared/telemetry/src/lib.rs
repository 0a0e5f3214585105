//! Telemetry for the services: JSON logs, OTLP traces and Prometheus metrics.
//!
//! This is the only crate that touches `tracing-subscriber` and the OpenTelemetry SDK, so the
//! services stay free of exporter details. Everything is configured by the standard
//! variables (`RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
//! `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`, …), which the SDK
//! reads itself; nothing here re-implements them.
//!
//! # Layout
//! - `traces`: the tracer provider, the W3C propagator and the OTLP/HTTP exporter.
//! - `logs`: the JSON log layer and its filter.
//! - [`metrics`]: the Prometheus recorder behind `/metrics`.

mod logs;
/// The process-wide Prometheus recorder behind every service's `/metrics`.
pub mod metrics;
// The span exporter's HTTP(S) client.
mod otlp_http;
mod traces;

use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};

pub use traces::{TracesGuard, install_propagator};

/// Why telemetry could not be set up. Start-up treats all of these as fatal: a service that
/// silently runs without its traces or logs is harder to operate than one that refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter rejected its configuration (e.g. an unsupported protocol).
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A TLS file named by `OTEL_EXPORTER_OTLP_CERTIFICATE` (or the client certificate
    /// variables) cannot be used.
    #[error("OTLP exporter TLS: {0}")]
    OtlpTls(String),
    /// `RUST_LOG` does not parse.
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// A global subscriber was already installed in this process.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs logs and traces for the whole process and returns the guard that flushes the
/// traces at exit. `service_name` is the fallback when `OTEL_SERVICE_NAME` is not set.
///
/// Call once, from `main`, inside the tokio runtime.
pub fn init(service_name: &'static str) -> Result<TracesGuard, TelemetryError> {
    // Install the metrics recorder now: anything recorded before it exists is lost.
    metrics::prometheus();
    let (guard, tracer) = traces::init(service_name)?;
    // Each layer has its own filter: RUST_LOG decides what is logged, not what is traced,
    // so quieter logs (RUST_LOG=warn) do not silently remove the spans from Jaeger.
    tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(traces::filter()),
        )
        .with(logs::json_layer(service_name).with_filter(logs::filter()?))
        .try_init()?;
    Ok(guard)
}
