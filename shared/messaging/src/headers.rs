//! Names of the AMQP headers this system writes. Kept together so that the DLQ tooling,
//! the tests and the consumer agree on them.

/// How many times the message has been handled so far, including the current attempt
/// (1 on first delivery). Written on each retry copy.
pub const ATTEMPT: &str = "x-attempt";
/// Why the message was dead-lettered, in words.
pub const DEAD_LETTER_REASON: &str = "x-dead-letter-reason";
/// `permanent` (can never succeed) or `exhausted` (ran out of retries).
pub const DEAD_LETTER_KIND: &str = "x-dead-letter-kind";
/// The routing key the message was first published with; retries and dead-lettering
/// go through the default exchange and would otherwise lose it.
pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
/// The exchange the message was first published to.
pub const ORIGINAL_EXCHANGE: &str = "x-original-exchange";
/// The work queue the message failed in; the queue a redrive sends it back to.
pub const ORIGINAL_QUEUE: &str = "x-original-queue";
/// Why the last attempt asked for a retry.
pub const RETRY_REASON: &str = "x-retry-reason";
/// Set on a message sent back from a DLQ by `dlq redrive`: the DLQ it came from.
pub const REDRIVEN_FROM: &str = "x-redriven-from";
/// Set on a message sent again from the producer's event log by a replay.
pub const REPLAYED: &str = "x-replayed";
