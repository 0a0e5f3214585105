use std::fmt;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter, Layer,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields,
        format::{JsonFields, Writer},
    },
    registry::LookupSpan,
};

/// Used when `RUST_LOG` is not set. lapin logs every connection step at info and opens a
/// long-lived span per connection, which would become a root span in every trace view; it
/// also dumps whole returned messages at warn, which our publisher reports more usefully.
const DEFAULT_FILTER: &str = "info,lapin=error,amq_protocol=warn,sqlx=warn,tower_http=warn";

/// One flat JSON object per line on stdout, ready for a log shipper:
///
/// ```json
/// {"timestamp":"…","level":"INFO","service":"email","target":"email::welcome",
///  "message":"welcome mail sent","trace_id":"4bf9…","event.id":"01a2…", …}
/// ```
///
/// Besides the event's own fields it carries the fields of every enclosing span (the
/// innermost wins). The request and message spans record `trace_id`, so every line written
/// while handling a request or a message has the id to paste into Jaeger, next to the
/// route or the message id and event type, and `span_id`, the request or message span.
pub(crate) fn json_layer<S>(service: &'static str) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // The same name the traces carry: OTEL_SERVICE_NAME when set.
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines { service })
}

/// The log filter from `RUST_LOG`, or [`DEFAULT_FILTER`].
pub(crate) fn filter() -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives),
        _ => EnvFilter::try_new(DEFAULT_FILTER),
    }
}

/// The event formatter behind [`json_layer`].
struct JsonLines {
    service: String,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut fields = Map::new();
        // Span fields first (root to leaf, so inner spans win), then the event's own.
        for span in ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
        {
            let extensions = span.extensions();
            let Some(formatted) = extensions.get::<FormattedFields<N>>() else {
                continue;
            };
            if let Ok(Value::Object(span_fields)) = serde_json::from_str::<Value>(&formatted.fields)
            {
                fields.extend(
                    span_fields
                        .into_iter()
                        .filter(|(name, _)| !name.starts_with("otel.")),
                );
            }
        }
        event.record(&mut FieldVisitor(&mut fields));

        // The keys people scan for first, in a fixed order; then the rest, sorted.
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut line: Vec<(String, Value)> = vec![
            ("timestamp".into(), timestamp.into()),
            ("level".into(), metadata.level().as_str().into()),
            ("service".into(), self.service.clone().into()),
        ];
        for key in ["message", "trace_id", "span_id"] {
            if let Some(value) = fields.remove(key) {
                line.push((key.into(), value));
            }
        }
        line.push(("target".into(), metadata.target().into()));
        line.extend(fields);
        write!(writer, "{{")?;
        for (index, (key, value)) in line.iter().enumerate() {
            let key = serde_json::to_string(key).map_err(|_| fmt::Error)?;
            let value = serde_json::to_string(value).map_err(|_| fmt::Error)?;
            let separator = if index == 0 { "" } else { "," };
            write!(writer, "{separator}{key}:{value}")?;
        }
        writeln!(writer, "}}")
    }
}

/// Collects an event's fields into the JSON object.
struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
