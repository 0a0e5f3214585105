//! The trace context of an outbox row: captured from the request span when the row is
//! written, restored as an OpenTelemetry context when the row is published. Both
//! directions are here, side by side, so that they cannot drift apart.

use std::collections::HashMap;

use opentelemetry::{Context, global, propagation::TextMapPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C Trace Context of the request that wrote a row, as the `traceparent` and
/// `tracestate` columns hold it.
///
/// Text rather than trace and span ids: it is what the W3C propagator reads and writes, and
/// it keeps the sampled flag and any vendor `tracestate`, which ids alone would lose.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct StoredTraceContext {
    /// `traceparent`; `None` if the request was not traced.
    pub(crate) traceparent: Option<String>,
    /// `tracestate`; `None` when it is empty, which is nearly always.
    pub(crate) tracestate: Option<String>,
}

impl StoredTraceContext {
    /// The context of the current tracing span. `OutboxEntry::new` calls this in the
    /// sign-up's request span, before the `INSERT users` span exists.
    pub(crate) fn capture_current() -> Self {
        let context = tracing::Span::current().context();
        global::get_text_map_propagator(|propagator| Self::capture(propagator, &context))
    }

    /// The context as a span in another task, process or time can continue it: the parent
    /// of the relay's `users publish` span, or the link of a replayed message.
    pub(crate) fn restore(&self) -> Context {
        global::get_text_map_propagator(|propagator| self.restore_with(propagator))
    }

    /// Writes `context` with `propagator` and keeps the two W3C fields.
    fn capture(propagator: &dyn TextMapPropagator, context: &Context) -> Self {
        let mut carrier = HashMap::new();
        propagator.inject_context(context, &mut carrier);
        Self {
            traceparent: carrier.remove("traceparent"),
            tracestate: carrier
                .remove("tracestate")
                .filter(|state| !state.is_empty()),
        }
    }

    /// Reads the two fields back with `propagator`; without them, the current context
    /// (so a span made from it becomes a new root).
    fn restore_with(&self, propagator: &dyn TextMapPropagator) -> Context {
        let mut carrier = HashMap::new();
        if let Some(traceparent) = &self.traceparent {
            carrier.insert("traceparent".to_owned(), traceparent.clone());
        }
        if let Some(tracestate) = &self.tracestate {
            carrier.insert("tracestate".to_owned(), tracestate.clone());
        }
        propagator.extract(&carrier)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use opentelemetry::{
        SpanId, TraceFlags, TraceId,
        trace::{SpanContext, TraceContextExt, TraceState},
    };
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    fn request_context(state: &str) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("trace id"),
            SpanId::from_hex("b7ad6b7169203331").expect("span id"),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_str(state).expect("tracestate"),
        ))
    }

    /// What the relay restores is the request span, flags and vendor state included.
    #[test]
    fn a_captured_context_is_restored_with_the_same_ids_flags_and_state() {
        let propagator = TraceContextPropagator::new();
        let original = request_context("vendor=value");

        let stored = StoredTraceContext::capture(&propagator, &original);
        let restored = stored.restore_with(&propagator);

        assert_eq!(
            stored.traceparent.as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(stored.tracestate.as_deref(), Some("vendor=value"));
        assert_eq!(
            restored.span().span_context(),
            original.span().span_context(),
            "the relay's parent is the request span"
        );
    }

    /// An empty `tracestate` (the usual case) takes no space in the row.
    #[test]
    fn an_empty_tracestate_is_stored_as_null() {
        let stored =
            StoredTraceContext::capture(&TraceContextPropagator::new(), &request_context(""));

        assert!(stored.traceparent.is_some());
        assert_eq!(stored.tracestate, None);
    }

    /// A request without a trace stores nothing, and its event starts a new trace.
    #[test]
    fn an_untraced_request_stores_nothing_and_restores_to_a_new_root() {
        let propagator = TraceContextPropagator::new();

        let stored = StoredTraceContext::capture(&propagator, &Context::new());
        let restored = stored.restore_with(&propagator);

        assert_eq!(stored, StoredTraceContext::default());
        assert!(!restored.span().span_context().is_valid());
    }
}
