//! SQL for users, the outbox and idempotency keys. Runtime-checked queries (`query_as` +
//! `FromRow`): see docs/decisions/0002 for why not the compile-time macros.

use chrono::{DateTime, Utc};
use events::{Envelope, Event};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::NewUser;

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

/// A stored user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// UUIDv7.
    pub user_id: Uuid,
    /// Normalised address.
    pub email: String,
    /// Trimmed name.
    pub display_name: String,
    /// When the user was committed.
    pub created_at: DateTime<Utc>,
}

/// W3C trace context kept with an outbox row.
#[derive(Debug, Clone, Default)]
pub struct TraceCarrier {
    /// `traceparent`, if the request was traced.
    pub traceparent: Option<String>,
    /// `tracestate`, if any vendor state came with it.
    pub tracestate: Option<String>,
}

/// Inserts the user with a new UUIDv7; a taken email is [`StoreError::DuplicateEmail`].
#[tracing::instrument(
    name = "INSERT users",
    skip_all,
    fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "INSERT", db.collection.name = "users")
)]
pub async fn insert_user(tx: &mut PgConnection, user: &NewUser) -> Result<User, StoreError> {
    sqlx::query_as(
        "insert into users (user_id, email, display_name) values ($1, $2, $3)
         returning user_id, email, display_name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(user.email.as_ref())
    .bind(user.display_name.as_ref())
    .fetch_one(tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => {
            StoreError::DuplicateEmail
        }
        _ => StoreError::Database(error),
    })
}

/// Reads one user.
#[tracing::instrument(
    name = "SELECT users",
    skip_all,
    fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "SELECT", db.collection.name = "users")
)]
pub async fn find_user(db: &PgPool, user_id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("select user_id, email, display_name, created_at from users where user_id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await
}

/// Adds an event to the outbox, in the caller's transaction.
#[tracing::instrument(
    name = "INSERT outbox",
    skip_all,
    fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "INSERT", db.collection.name = "outbox")
)]
pub async fn insert_outbox<T: Event>(
    tx: &mut PgConnection,
    event: &Envelope<T>,
    trace: &TraceCarrier,
) -> Result<(), sqlx::Error> {
    let payload =
        serde_json::to_value(event).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    let aggregate_id =
        Uuid::parse_str(&event.subject).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    sqlx::query(
        "insert into outbox (event_id, event_type, aggregate_id, payload, traceparent, tracestate)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.id)
    .bind(&event.event_type)
    .bind(aggregate_id)
    .bind(payload)
    .bind(&trace.traceparent)
    .bind(&trace.tracestate)
    .execute(tx)
    .await?;
    Ok(())
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
#[tracing::instrument(
    name = "INSERT idempotency",
    skip_all,
    fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "INSERT", db.collection.name = "idempotency")
)]
pub async fn claim_idempotency_key(
    tx: &mut PgConnection,
    key: &str,
    request: &Value,
) -> Result<IdempotencyClaim, sqlx::Error> {
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
    let (request, body): (Value, Option<Value>) =
        sqlx::query_as("select request, response_body from idempotency where idempotency_key = $1")
            .bind(key)
            .fetch_one(tx)
            .await?;
    Ok(IdempotencyClaim::Replay {
        request,
        body: body.unwrap_or(Value::Null),
    })
}

/// Stores the answer for a claimed key, in the same transaction as the user.
#[tracing::instrument(
    name = "UPDATE idempotency",
    skip_all,
    fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "UPDATE", db.collection.name = "idempotency")
)]
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
        .await?;
    Ok(())
}
