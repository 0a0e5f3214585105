//! Users: a sign-up batch written with its events in one statement, and the read-back.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use super::StoreError;
use crate::{domain::NewUser, outbox::OutboxEntry};

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
