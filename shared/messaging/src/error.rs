/// Failures of the messaging layer. All of them are about the broker link; a session that
/// returns one of these is restarted by [`crate::connection::supervise`] on a new connection.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// The AMQP connection or channel failed (network, broker shutdown, protocol error).
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The TLS settings in the AMQP URL cannot be used (an unreadable certificate file,
    /// a client certificate without its key).
    #[error("AMQP TLS settings: {0}")]
    Tls(String),
    /// The connection ended without reporting an error.
    #[error("the broker connection closed")]
    ConnectionClosed,
    /// The broker answered a publish with a nack: it could not take responsibility for it.
    #[error("the broker refused message {message_id} (nack)")]
    Nacked {
        /// The refused message.
        message_id: String,
    },
    /// A mandatory message matched no queue, so nobody would ever receive it.
    #[error("message {message_id} was returned as unroutable: {reply}")]
    Unroutable {
        /// The returned message.
        message_id: String,
        /// The broker's reply text, e.g. `NO_ROUTE`.
        reply: String,
    },
    /// No confirm arrived in time; the message may or may not have been taken.
    #[error("no publisher confirm for message {message_id} within {timeout:?}")]
    ConfirmTimeout {
        /// The message whose fate is unknown.
        message_id: String,
        /// How long we waited.
        timeout: std::time::Duration,
    },
}
