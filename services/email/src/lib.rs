//! Email: sends each new user one welcome mail, shows what it sent, and forgets a user who
//! asks to be forgotten.
//!
//! It consumes `user.registered.v1` and `user.deleted.v1`, each from its own queue, and
//! never calls registration. The
//! consuming-service skeleton (`service_kit::consumer_service`) does the rest: the
//! configuration, the database with its inbox, the consume loop, `/healthz`, `/readyz`,
//! `/metrics` and the graceful shutdown.
//!
//! # Layout
//! - [`welcome`]: the event handler (accept, send once, record), the heart of the service.
//! - [`erasure`]: the `user.deleted.v1` handler.
//! - [`mailer`]: the SMTP client and the welcome mail's content.
//! - [`store`]: SQL for the welcome mails.
//! - [`http`]: `GET /emails?to=`.

// The `user.deleted.v1` handler: erase the user's mail records.
pub mod erasure;
// `GET /emails?to=`.
pub mod http;
// The SMTP client and the welcome mail's content.
pub mod mailer;
// SQL for the welcome mails.
pub mod store;
// The event handler: accept, send once, record.
pub mod welcome;

use std::sync::Arc;

use events::{Event, UserDeletedV1, UserRegisteredV1};
use service_kit::{
    app::App,
    config::ServiceIdentity,
    consumer_service::{ConsumerService, ConsumerServiceConfig, Handlers, Subscription},
    secrets::{ResolveSecrets, SecretError, put_password_from_file},
};

use crate::{erasure::ErasureHandler, mailer::Mailer, welcome::WelcomeHandler};

/// The email service: its name, port, queues and tables (the inbox comes from
/// service-kit).
pub static SERVICE: ConsumerService = ConsumerService {
    identity: ServiceIdentity::new(
        "email",
        8081,
        "Welcome mails: one per `user.registered.v1` event, sent once; a user's records erased on `user.deleted.v1`.",
    ),
    subscriptions: &[
        Subscription::new("email.user-registered", UserRegisteredV1::TYPE),
        Subscription::new("email.user-deleted", UserDeletedV1::TYPE),
    ],
    migrator: &sqlx::migrate!("./migrations"),
    sealed_tables: &[&store::WELCOME_MAILS],
};

/// The email service's configuration: the shared settings plus [`MailSettings`].
pub type Config = ConsumerServiceConfig<MailSettings>;

/// What only the email service needs: where to send mail, and as whom.
#[derive(Debug, Clone, clap::Args)]
pub struct MailSettings {
    /// The SMTP server: `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`.
    #[arg(long, env = "SMTP_URL", default_value = "smtp://127.0.0.1:1025")]
    pub smtp_url: String,
    /// A file holding the SMTP password (a Docker or Kubernetes secret); it replaces the
    /// password in `SMTP_URL`.
    #[arg(long, env = "SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<std::path::PathBuf>,
    /// The sender of the welcome mail.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Sign-up demo <welcome@example.org>"
    )]
    pub mail_from: String,
}

impl ResolveSecrets for MailSettings {
    fn resolve_secrets(&mut self) -> Result<(), SecretError> {
        put_password_from_file(
            &mut self.smtp_url,
            self.smtp_password_file.as_deref(),
            "SMTP_PASSWORD_FILE",
        )
    }
}

/// Builds the service: the SMTP client (connecting lazily, so the service starts while
/// the SMTP server is down), then the skeleton with the welcome handler and its routes.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let connections = usize::from(config.consumer.settings.prefetch);
    let mailer = Mailer::new(&config.own.smtp_url, &config.own.mail_from, connections)?;
    let app = SERVICE
        .build(&config, |db, pii| {
            let welcome = WelcomeHandler::new(db.clone(), pii.clone(), mailer, connections);
            let handlers = Handlers::default()
                .on::<UserRegisteredV1, _>(Arc::new(welcome))
                .on::<UserDeletedV1, _>(Arc::new(ErasureHandler::new(db.clone())));
            (handlers, http::api())
        })
        .await?;
    Ok(app)
}
