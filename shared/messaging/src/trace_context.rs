//! W3C Trace Context in AMQP headers: `traceparent` and `tracestate` as long strings in
//! the message's headers table, as the W3C AMQP trace-context draft does. The two
//! newtypes have the shape of `opentelemetry-http`'s `HeaderInjector`/`HeaderExtractor`.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::{
    Context, global,
    propagation::{Extractor, Injector},
};

/// Writes propagation fields into a headers table.
#[derive(Debug)]
pub(crate) struct HeaderInjector<'a>(pub &'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` carries nothing; leave it out rather than send noise.
        if value.is_empty() {
            return;
        }
        // Always a long string (`S`): amq-protocol's ShortString value is for internal use
        // and RabbitMQ would read it back as a different type.
        self.0.insert(
            ShortString::from(key),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
}

/// Reads propagation fields from a headers table. Anything that is not a UTF-8 long
/// string is ignored, so a malformed header starts a new trace instead of failing.
#[derive(Debug)]
pub(crate) struct HeaderExtractor<'a>(pub &'a FieldTable);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(key)? {
            AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|key| key.as_str()).collect()
    }
}

/// Adds the context's `traceparent`/`tracestate` to `headers` with the global propagator.
pub(crate) fn inject(context: &Context, headers: &mut FieldTable) {
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(context, &mut HeaderInjector(headers));
    });
}

/// The remote context carried by `headers`, or an empty context (a new root) if none.
pub(crate) fn extract(headers: &FieldTable) -> Context {
    let extractor = HeaderExtractor(headers);
    global::get_text_map_propagator(|propagator| propagator.extract(&extractor))
}
