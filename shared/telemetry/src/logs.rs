use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Used when `RUST_LOG` is not set. lapin logs every connection step at info and opens a
/// long-lived span per connection, which would become a root span in every trace view; it
/// also dumps whole returned messages at warn, which our publisher reports more usefully.
const DEFAULT_FILTER: &str = "info,lapin=error,amq_protocol=warn,sqlx=warn,tower_http=warn";

/// One JSON object per line on stdout, ready for a log shipper.
///
/// `with_span_list` puts the fields of every enclosing span on each line; the request and
/// message spans record `trace_id`, so every line written while handling a request or a
/// message carries the id to paste into Jaeger.
pub(crate) fn json_layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .flatten_event(true)
}

/// The log filter from `RUST_LOG`, or [`DEFAULT_FILTER`].
pub(crate) fn filter() -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives),
        _ => EnvFilter::try_new(DEFAULT_FILTER),
    }
}
