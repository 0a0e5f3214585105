//! SQL for users and idempotency keys (the outbox has its own module, `crate::outbox`).
//! Runtime-checked queries (`query_as` + `FromRow`): see docs/decisions/0002 for why not
//! the compile-time macros. Each statement runs in a `service_kit::db_span!` client span.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use crate::{domain::NewUser, outbox::OutboxEntry};

/// Failures of the write path that callers must tell apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The unique constraint on `users.email` fired.
    #[error("email already registered")]
    DuplicateEmail,
    /// Anything else from the database.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A user, as stored and as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// UUIDv7.
    pub user_id: Uuid,
    /// Normalised address.
    pub email: String,
    /// Trimmed name.
    pub display_name: String,
    /// When the user signed up, by this service's clock, to the microsecond (what
    /// PostgreSQL keeps, so the event and the row say the same instant).
    pub created_at: DateTime<Utc>,
}

impl User {
    /// A new user from validated input: a new UUIDv7 and the current time. Made before
    /// the insert so that the event can be made too and written in the same statement.
    pub fn new(user: &NewUser) -> Self {
        Self {
            user_id: Uuid::now_v7(),
            email: user.email.as_ref().to_owned(),
            display_name: user.display_name.as_ref().to_owned(),
            created_at: Utc::now().trunc_subsecs(6),
        }
    }
}

/// Inserts the user and its event's outbox row in one statement: the outbox insert reads
/// the user insert's `RETURNING`, so the event is written if and only if the user is,
/// atomically, in one round trip (no BEGIN and COMMIT around two statements). Runs on a
/// pool (its own transaction) or inside the caller's (the `Idempotency-Key` path). A taken
/// email is [`StoreError::DuplicateEmail`] and writes nothing.
pub async fn insert_user<'c>(
    db: impl PgExecutor<'c>,
    user: &User,
    event: &OutboxEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "with new_user as (
             insert into users (user_id, email, display_name, created_at)
             values ($1, $2, $3, $4)
             returning user_id)
         insert into outbox
             (event_id, event_type, aggregate_id, payload, traceparent, tracestate)
         select $5, $6, $7, $8, $9, $10 from new_user",
    )
    .bind(user.user_id)
    .bind(&user.email)
    .bind(&user.display_name)
    .bind(user.created_at)
    .bind(event.event_id)
    .bind(&event.event_type)
    .bind(event.aggregate_id)
    .bind(&event.payload)
    .bind(&event.trace.traceparent)
    .bind(&event.trace.tracestate)
    .execute(db)
    .instrument(service_kit::db_span!("INSERT", "users"))
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => {
            StoreError::DuplicateEmail
        }
        _ => StoreError::Database(error),
    })?;
    Ok(())
}

/// Reads one user.
pub async fn find_user(db: &PgPool, user_id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("select user_id, email, display_name, created_at from users where user_id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .instrument(service_kit::db_span!("SELECT", "users"))
        .await
}

/// What a key means for this request.
#[derive(Debug)]
pub enum IdempotencyClaim {
    /// First use: the key is now held by this transaction.
    New,
    /// The key was used before; here is what was asked and answered then.
    Replay {
        /// The first request's normalised body.
        request: Value,
        /// The first answer's body.
        body: Value,
    },
}

/// Claims `key` inside the transaction. A concurrent request with the same key waits on
/// the primary key until this transaction ends, then sees the stored answer (or, if this
/// one rolled back, claims the key itself).
pub async fn claim_idempotency_key(
    tx: &mut PgConnection,
    key: &str,
    request: &Value,
) -> Result<IdempotencyClaim, sqlx::Error> {
    // One span for both statements: the read-back is part of claiming a taken key.
    async {
        let inserted = sqlx::query(
            "insert into idempotency (idempotency_key, request) values ($1, $2)
             on conflict (idempotency_key) do nothing",
        )
        .bind(key)
        .bind(request)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(IdempotencyClaim::New);
        }
        let (request, body): (Value, Option<Value>) = sqlx::query_as(
            "select request, response_body from idempotency where idempotency_key = $1",
        )
        .bind(key)
        .fetch_one(tx)
        .await?;
        Ok(IdempotencyClaim::Replay {
            request,
            body: body.unwrap_or(Value::Null),
        })
    }
    .instrument(service_kit::db_span!("INSERT", "idempotency"))
    .await
}

/// Stores the answer for a claimed key, in the same transaction as the user.
pub async fn save_idempotent_response(
    tx: &mut PgConnection,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("update idempotency set response_status = $2, response_body = $3 where idempotency_key = $1")
        .bind(key)
        .bind(i16::try_from(status).unwrap_or(i16::MAX))
        .bind(body)
        .execute(tx)
        .instrument(service_kit::db_span!("UPDATE", "idempotency"))
        .await?;
    Ok(())
}
