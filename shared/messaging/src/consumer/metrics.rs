//! What the consume loop counts. Each metric is described here, next to the code that
//! records it, and every outcome counter starts at 0 so dashboards and `rate()` see the
//! series before the first retry or dead letter ever happens.

use std::time::Duration;

use crate::outcome::Skip;

/// What happened to a delivery: the `outcome` label of `events_consumed_total`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Disposition {
    /// Handled and acked.
    Done,
    /// Copied to a delay queue for another attempt, then acked.
    Retried,
    /// Copied to the dead-letter queue, then acked.
    DeadLettered,
    /// The copy failed, so the original went back to the queue.
    Requeued,
}

impl Disposition {
    const ALL: [Self; 4] = [
        Self::Done,
        Self::Retried,
        Self::DeadLettered,
        Self::Requeued,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::Requeued => "requeued",
        }
    }
}

/// HELP texts, and the outcome counters of `queue` at 0.
pub(super) fn describe(queue: &'static str) {
    metrics::describe_counter!(
        "events_consumed_total",
        "Deliveries handled, by queue and outcome (done, retried, dead_lettered, requeued)."
    );
    metrics::describe_histogram!(
        "event_handler_duration_seconds",
        metrics::Unit::Seconds,
        "Time from delivery to ack, per message."
    );
    metrics::describe_histogram!(
        "event_lag_seconds",
        metrics::Unit::Seconds,
        "Now minus the event's time, when a consumer receives it."
    );
    metrics::describe_gauge!("queue_depth_messages", "Messages ready in the work queue.");
    metrics::describe_gauge!(
        "dead_letter_queue_depth_messages",
        "Messages waiting in the dead-letter queue."
    );
    metrics::describe_counter!(
        "events_skipped_total",
        "Deliveries acked without an effect, by queue and reason (stale: a later event of \
         the user came first; already_applied: a redelivery). Also counted as done."
    );
    for disposition in Disposition::ALL {
        let labels = [("queue", queue), ("outcome", disposition.label())];
        metrics::counter!("events_consumed_total", &labels).increment(0);
    }
    for skip in Skip::ALL {
        let labels = [("queue", queue), ("reason", skip.label())];
        metrics::counter!("events_skipped_total", &labels).increment(0);
    }
}

/// A delivery acked without an effect, for `skip`'s reason.
pub(super) fn record_skip(queue: &'static str, skip: Skip) {
    let labels = [("queue", queue), ("reason", skip.label())];
    metrics::counter!("events_skipped_total", &labels).increment(1);
}

/// One delivery finished with `disposition` after `elapsed`.
pub(super) fn record_delivery(queue: &'static str, disposition: Disposition, elapsed: Duration) {
    let labels = [("queue", queue), ("outcome", disposition.label())];
    metrics::counter!("events_consumed_total", &labels).increment(1);
    metrics::histogram!("event_handler_duration_seconds", "queue" => queue)
        .record(elapsed.as_secs_f64());
}

/// How old an event was when it arrived, in seconds.
pub(super) fn record_lag(queue: &'static str, lag_seconds: f64) {
    metrics::histogram!("event_lag_seconds", "queue" => queue).record(lag_seconds);
}

/// Messages waiting in the work queue and in its DLQ.
pub(super) fn record_depths(queue: &'static str, work: Option<u32>, dead_letter: Option<u32>) {
    if let Some(depth) = work {
        metrics::gauge!("queue_depth_messages", "queue" => queue).set(f64::from(depth));
    }
    if let Some(depth) = dead_letter {
        metrics::gauge!("dead_letter_queue_depth_messages", "queue" => queue).set(f64::from(depth));
    }
}
