/// A handler's verdict on one message. Handlers never ack themselves: the consume loop
/// owns the delivery and turns this value into the right broker operation, so "acked
/// twice" or "forgot to ack" cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerOutcome {
    /// The effect is committed: ack.
    Done,
    /// Nothing to do, rightly: ack, and count why in `events_skipped_total`. Both
    /// reasons are normal, but their rates tell an operator how often the broker
    /// redelivers and how often one user's events overtake each other (which grows with
    /// consumer instances).
    Skipped(Skip),
    /// A transient failure (SMTP down, database unavailable, a timeout): try again later
    /// through the delay queues; dead-letter after the last attempt.
    Retry(String),
    /// The message can never succeed (it breaks an invariant): dead-letter it now.
    Reject(String),
}

/// Why a handler applied nothing: the `reason` label of `events_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A later event of the same user (a higher `sequence`) was applied first.
    Stale,
    /// This very event was applied before: a redelivery, a redrive, a replay.
    AlreadyApplied,
}

impl Skip {
    /// Every reason, for starting each counter at 0.
    pub const ALL: [Self; 2] = [Self::Stale, Self::AlreadyApplied];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::AlreadyApplied => "already_applied",
        }
    }
}
