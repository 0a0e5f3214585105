/// A handler's verdict on one message. Handlers never ack themselves: the consume loop
/// owns the delivery and turns this value into the right broker operation, so "acked
/// twice" or "forgot to ack" cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerOutcome {
    /// The effect is committed (or was already, for a redelivery): ack.
    Done,
    /// A transient failure (SMTP down, database unavailable, a timeout): try again later
    /// through the delay queues; dead-letter after the last attempt.
    Retry(String),
    /// The message can never succeed (it breaks an invariant): dead-letter it now.
    Reject(String),
}
