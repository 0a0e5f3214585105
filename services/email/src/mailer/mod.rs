//! The SMTP client and the welcome mail's content.
//!
//! - `endpoint`: `SMTP_URL`, and opening one connection with `TCP_NODELAY` (why: see there).
//! - `pool`: the open connections, one per message in flight at most.

mod endpoint;
mod pool;

use std::{sync::Arc, time::Duration};

use lettre::{
    Message,
    message::{Mailbox, header::ContentType},
};
use uuid::Uuid;

use self::{endpoint::SmtpEndpoint, pool::SmtpPool};

/// How long one mail may take (a connection if needed, then the mail transaction) before
/// it counts as a (transient) failure.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a mail could not be handed to the SMTP server.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `SMTP_URL` or `MAIL_FROM` is unusable: a start-up error.
    #[error("invalid mail configuration: {0}")]
    Config(String),
    /// The recipient or the message can never be accepted (5xx, or an invalid address).
    #[error("permanent SMTP failure: {0}")]
    Permanent(String),
    /// Worth retrying: connection refused, timeout, 4xx.
    #[error("transient SMTP failure: {0}")]
    Transient(String),
}

/// A mail ready to send, as stored in `welcome_mails`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// The event it answers; also the seed of the Message-ID.
    pub event_id: Uuid,
    /// The recipient's address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

impl OutgoingMail {
    /// The welcome mail for a new user.
    pub fn welcome(event_id: Uuid, recipient: &str, display_name: &str) -> Self {
        Self {
            event_id,
            recipient: recipient.to_owned(),
            subject: format!("Welcome, {display_name}!"),
            body: format!(
                "Hello {display_name},\n\nthank you for signing up. Your account is ready.\n\n-- The sign-up demo\n"
            ),
        }
    }

    /// The RFC 5322 Message-ID: the same event always gives the same id, so a duplicate
    /// (possible only after a crash between sending and recording) can be recognised.
    pub fn message_id(&self) -> String {
        format!("<{}@welcome.signup-demo>", self.event_id)
    }
}

/// The SMTP client. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Mailer {
    pool: Arc<SmtpPool>,
    from: Mailbox,
}

impl Mailer {
    /// Builds the client from `SMTP_URL` and `MAIL_FROM`, with at most `connections` open
    /// at once (the consumer's concurrency). Connects lazily, so the service starts even
    /// while the SMTP server is down (mails wait and retry).
    pub fn new(smtp_url: &str, from: &str, connections: usize) -> Result<Self, MailError> {
        let endpoint = SmtpEndpoint::parse(smtp_url)?;
        let from = from
            .parse()
            .map_err(|error| MailError::Config(format!("MAIL_FROM: {error}")))?;
        Ok(Self {
            pool: Arc::new(SmtpPool::new(endpoint, connections)),
            from,
        })
    }

    /// Hands the mail to the SMTP server.
    #[tracing::instrument(
        name = "smtp send",
        skip_all,
        fields(otel.kind = "client", mail.message_id = %mail.message_id())
    )]
    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|error| MailError::Permanent(format!("invalid recipient: {error}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .message_id(Some(mail.message_id()))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|error| MailError::Permanent(format!("cannot build the message: {error}")))?;
        let formatted = message.formatted();
        let sent = self.pool.send(message.envelope(), &formatted);
        tokio::time::timeout(SMTP_TIMEOUT, sent)
            .await
            .map_err(|_| MailError::Transient(format!("no answer within {SMTP_TIMEOUT:?}")))?
    }
}

/// A 5xx answer (or an address the server can never take) is permanent; anything else,
/// a 4xx, a refused or broken connection, a timeout, is worth retrying.
fn classify(error: lettre::transport::smtp::Error) -> MailError {
    if error.is_permanent() {
        MailError::Permanent(error.to_string())
    } else {
        MailError::Transient(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_id_is_derived_from_the_event_id() {
        let event_id = Uuid::now_v7();
        let first = OutgoingMail::welcome(event_id, "ada@example.org", "Ada");
        let again = OutgoingMail::welcome(event_id, "ada@example.org", "Ada");
        assert_eq!(first.message_id(), again.message_id());
        assert!(first.message_id().contains(&event_id.to_string()));
    }

    #[test]
    fn an_invalid_smtp_url_is_a_configuration_error() {
        let error = Mailer::new("gopher://nope", "a@example.org", 1).expect_err("refused");
        assert!(matches!(error, MailError::Config(_)), "{error}");
    }
}
