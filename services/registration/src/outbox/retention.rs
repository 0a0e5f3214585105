//! Expiry of the event log: the outbox keeps every event after it was published (for
//! `registration replay`) until the retention period has passed, then the service's
//! cleanup task (`service_kit::retention`) deletes it.

use std::time::Duration;

use service_kit::retention::Retention;

/// The event log's retention: published events older than `keep_for` go. Unpublished rows
/// never do, however old: they have not been delivered yet.
pub fn event_log(keep_for: Duration) -> Retention {
    Retention {
        what: "event log",
        statement: "delete from outbox where position in (
                        select position from outbox
                        where published_at is not null and published_at < $1
                        order by position limit $2
                        for update skip locked)",
        keep_for,
    }
}
