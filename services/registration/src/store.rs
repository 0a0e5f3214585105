//! SQL for users and idempotency keys (the outbox has its own module, `crate::outbox`).
//! Runtime-checked queries (`query_as` + `FromRow`): see docs/decisions/0002 for why not
//! the compile-time macros. Each statement runs in a `service_kit::db_span!` client span.

use std::sync::Arc;

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
    /// Anything else from the database. Shared, because a failed group commit
    /// ([`crate::sign_ups`]) is every caller's failure.
    #[error(transparent)]
    Database(Arc<sqlx::Error>),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
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

/// A user to insert with its event's outbox row.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// The new user.
    pub user: User,
    /// The `user.registered` event about them.
    pub event: OutboxEntry,
}

/// What became of one sign-up of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The user and the outbox row are written.
    Created,
    /// The address belongs to a user already (or to an earlier sign-up of the same
    /// batch): nothing is written for this one.
    EmailTaken,
}

impl Inserted {
    /// The verdict as the caller of a single sign-up sees it.
    pub fn into_result(self) -> Result<(), StoreError> {
        match self {
            Self::Created => Ok(()),
            Self::EmailTaken => Err(StoreError::DuplicateEmail),
        }
    }
}

/// Inserts one user and its event's outbox row inside the caller's transaction (the
/// `Idempotency-Key` path; the others go through [`crate::sign_ups`]).
pub async fn insert_user(tx: &mut PgConnection, sign_up: &SignUp) -> Result<(), StoreError> {
    let inserted = insert_users(tx, std::slice::from_ref(sign_up))
        .instrument(service_kit::db_span!("INSERT", "users"))
        .await?;
    match inserted.first() {
        Some(inserted) => inserted.into_result(),
        None => Err(sqlx::Error::RowNotFound.into()),
    }
}

/// Inserts users and their events' outbox rows in one statement: the outbox insert reads
/// the user insert's `RETURNING`, so an event is written if and only if its user is,
/// atomically, for the whole batch in one round trip (no BEGIN and COMMIT around two
/// statements). A taken address skips its sign-up only (`on conflict do nothing`), so it
/// does not fail its neighbours. Runs on a pool (its own transaction) or inside the
/// caller's (the `Idempotency-Key` path). Returns one verdict per sign-up, in order.
///
/// Users are inserted in address order: two batches in two processes that share
/// addresses take the unique index's locks in the same order and cannot deadlock.
pub async fn insert_users<'c>(
    db: impl PgExecutor<'c>,
    sign_ups: &[SignUp],
) -> Result<Vec<Inserted>, sqlx::Error> {
    fn column<T>(sign_ups: &[SignUp], field: impl Fn(&SignUp) -> T) -> Vec<T> {
        sign_ups.iter().map(field).collect()
    }
    let created: Vec<(bool,)> = sqlx::query_as(
        "with batch as (
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[],
                                  $5::uuid[], $6::text[], $7::uuid[], $8::jsonb[], $9::text[],
                                  $10::text[])
             with ordinality as b(user_id, email, display_name, created_at,
                                  event_id, event_type, aggregate_id, payload,
                                  traceparent, tracestate, position)),
         new_users as (
             insert into users (user_id, email, display_name, created_at)
             select user_id, email, display_name, created_at from batch order by email
             on conflict (email) do nothing
             returning user_id),
         new_events as (
             insert into outbox
                 (event_id, event_type, aggregate_id, payload, traceparent, tracestate)
             select event_id, event_type, aggregate_id, payload, traceparent, tracestate
             from batch join new_users using (user_id) order by position)
         select exists (select 1 from new_users n where n.user_id = b.user_id)
         from batch b order by b.position",
    )
    .bind(column(sign_ups, |s| s.user.user_id))
    .bind(column(sign_ups, |s| s.user.email.clone()))
    .bind(column(sign_ups, |s| s.user.display_name.clone()))
    .bind(column(sign_ups, |s| s.user.created_at))
    .bind(column(sign_ups, |s| s.event.event_id))
    .bind(column(sign_ups, |s| s.event.event_type.clone()))
    .bind(column(sign_ups, |s| s.event.aggregate_id))
    .bind(column(sign_ups, |s| s.event.payload.clone()))
    .bind(column(sign_ups, |s| s.event.trace.traceparent.clone()))
    .bind(column(sign_ups, |s| s.event.trace.tracestate.clone()))
    .fetch_all(db)
    .await?;
    Ok(created
        .into_iter()
        .map(|(created,)| {
            if created {
                Inserted::Created
            } else {
                Inserted::EmailTaken
            }
        })
        .collect())
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

/// The idempotency keys' retention: a key older than `keep_for` is forgotten, and a
/// retry with it after that is a new sign-up (a 409 if the first one succeeded). Clients
/// retry within seconds or minutes; the request and answer it holds include the address.
pub fn idempotency_keys(keep_for: std::time::Duration) -> service_kit::retention::Retention {
    service_kit::retention::Retention {
        what: "idempotency keys",
        statement: "delete from idempotency where idempotency_key in (
                        select idempotency_key from idempotency where created_at < $1
                        limit $2 for update skip locked)",
        keep_for,
    }
}

/// Stores the answer for a claimed key, in the same transaction as the user, with the
/// user it created (so that erasing the user deletes the record too).
pub async fn save_idempotent_response(
    tx: &mut PgConnection,
    key: &str,
    user_id: Uuid,
    status: u16,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update idempotency set user_id = $2, response_status = $3, response_body = $4
         where idempotency_key = $1",
    )
    .bind(key)
    .bind(user_id)
    .bind(i16::try_from(status).unwrap_or(i16::MAX))
    .bind(body)
    .execute(tx)
    .instrument(service_kit::db_span!("UPDATE", "idempotency"))
    .await?;
    Ok(())
}

/// Where a user stands when an erasure starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureTarget {
    /// The user exists, and is now locked for this transaction; its next event is
    /// number `next_sequence`.
    Present {
        /// The `sequence` the `user.deleted.v1` event takes.
        next_sequence: u64,
    },
    /// The user was erased before.
    AlreadyErased,
    /// No user ever had this id.
    Unknown,
}

/// Locks the user for the rest of the transaction and says where it stands. The lock
/// makes two concurrent erasures of one user take turns: the second finds it erased.
pub async fn lock_for_erasure(
    tx: &mut PgConnection,
    user_id: Uuid,
) -> Result<ErasureTarget, sqlx::Error> {
    async {
        let last: Option<(i64,)> =
            sqlx::query_as("select last_sequence from users where user_id = $1 for update")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((last,)) = last {
            let next_sequence = u64::try_from(last).unwrap_or(0) + 1;
            return Ok(ErasureTarget::Present { next_sequence });
        }
        let erased: Option<(Uuid,)> =
            sqlx::query_as("select user_id from erased_users where user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        Ok(if erased.is_some() {
            ErasureTarget::AlreadyErased
        } else {
            ErasureTarget::Unknown
        })
    }
    .instrument(service_kit::db_span!("SELECT", "users"))
    .await
}

/// Erases a user locked by [`lock_for_erasure`], in one statement: deletes the user row,
/// the user's earlier events from the event log (published or not: a `user.registered`
/// still waiting in the outbox is never sent) and the idempotency records of their
/// sign-up, records the erasure, and writes `event` (the `user.deleted.v1`) to the outbox.
pub async fn erase_user(
    tx: &mut PgConnection,
    user_id: Uuid,
    erased_at: DateTime<Utc>,
    event: &OutboxEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with gone as (delete from users where user_id = $1),
              forgotten_events as (delete from outbox where aggregate_id = $1),
              forgotten_keys as (delete from idempotency where user_id = $1),
              recorded as (insert into erased_users (user_id, erased_at) values ($1, $2))
         insert into outbox
             (event_id, event_type, aggregate_id, payload, traceparent, tracestate)
         values ($3, $4, $1, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(erased_at)
    .bind(event.event_id)
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(&event.trace.traceparent)
    .bind(&event.trace.tracestate)
    .execute(tx)
    .instrument(service_kit::db_span!("DELETE", "users"))
    .await?;
    Ok(())
}
