//! One shape for every database client span, so that Jaeger shows `INSERT users` or
//! `SELECT profiles` under the span that did the work, with the OpenTelemetry database
//! attributes, whichever service wrote the query.

/// A client span for one SQL statement: `db_span!("INSERT", "users")`.
///
/// Attach it with `tracing::Instrument::instrument` to the future that runs the statement.
/// A macro rather than a function so the span name (`"INSERT users"`) is a compile-time
/// constant: the name costs nothing per query and is low-cardinality, as Jaeger wants.
///
/// A statement that writes a group commit's batch ([`crate::group_commit`]) runs once for
/// many callers: `db_span!("INSERT", "inbox", parent: &caller, batch_size: n)` gives each
/// caller its own span in its own trace, with the batch's size as
/// `db.operation.batch.size`.
#[macro_export]
macro_rules! db_span {
    ($operation:literal, $table:literal) => {
        ::tracing::info_span!(
            concat!($operation, " ", $table),
            otel.kind = "client",
            db.system = "postgresql",
            db.operation.name = $operation,
            db.collection.name = $table,
        )
    };
    ($operation:literal, $table:literal, parent: $parent:expr, batch_size: $size:expr) => {
        ::tracing::info_span!(
            parent: $parent,
            concat!($operation, " ", $table),
            otel.kind = "client",
            db.system = "postgresql",
            db.operation.name = $operation,
            db.collection.name = $table,
            db.operation.batch.size = $size,
        )
    };
}
