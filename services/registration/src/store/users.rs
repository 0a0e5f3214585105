//! Users: a sign-up batch written with its events in one statement, and the read-back.

use chrono::{DateTime, SubsecRound, Utc};
use service_kit::pii::{Column, PiiError, Sealer};
use sqlx::{PgConnection, PgExecutor, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use super::StoreError;
use crate::{domain::NewUser, outbox::OutboxEntry};

/// The sealed address's column, and its keyed hash's (the unique index).
pub(crate) const EMAIL: Column = "users.email";
/// The sealed name's column.
pub(crate) const DISPLAY_NAME: Column = "users.display_name";

/// A user, as stored and as the API shows it.
#[derive(Debug, Clone)]
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

/// A user to insert with its event's outbox row, its personal data already sealed: what
/// reaches the database is only ever the sealed form.
#[derive(Debug, Clone)]
pub struct SignUp {
    user_id: Uuid,
    created_at: DateTime<Utc>,
    /// The address's keyed hash: what the unique index compares.
    email_hash: Vec<u8>,
    email: Vec<u8>,
    display_name: Vec<u8>,
    /// The `user.registered` event about them (sealed too).
    event: OutboxEntry,
}

impl SignUp {
    /// `user` sealed with `pii`, with its event.
    pub fn new(user: &User, event: OutboxEntry, pii: &Sealer) -> Result<Self, PiiError> {
        Ok(Self {
            user_id: user.user_id,
            created_at: user.created_at,
            email_hash: pii.lookup_hash(EMAIL, &user.email),
            email: pii.seal(EMAIL, &user.email)?,
            display_name: pii.seal(DISPLAY_NAME, &user.display_name)?,
            event,
        })
    }
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
             select * from unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[],
                                  $5::timestamptz[], $6::uuid[], $7::text[], $8::uuid[],
                                  $9::bytea[], $10::text[], $11::text[])
             with ordinality as b(user_id, email_hash, email_sealed, display_name_sealed,
                                  created_at, event_id, event_type, aggregate_id,
                                  payload_sealed, traceparent, tracestate, position)),
         new_users as (
             insert into users
                 (user_id, email_hash, email_sealed, display_name_sealed, created_at)
             select user_id, email_hash, email_sealed, display_name_sealed, created_at
             from batch order by email_hash
             on conflict (email_hash) do nothing
             returning user_id),
         new_events as (
             insert into outbox
                 (event_id, event_type, aggregate_id, payload_sealed, traceparent, tracestate)
             select event_id, event_type, aggregate_id, payload_sealed, traceparent, tracestate
             from batch join new_users using (user_id) order by position)
         select exists (select 1 from new_users n where n.user_id = b.user_id)
         from batch b order by b.position",
    )
    .bind(column(sign_ups, |s| s.user_id))
    .bind(column(sign_ups, |s| s.email_hash.clone()))
    .bind(column(sign_ups, |s| s.email.clone()))
    .bind(column(sign_ups, |s| s.display_name.clone()))
    .bind(column(sign_ups, |s| s.created_at))
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

/// A `users` row as stored: id, sealed address, sealed name, sign-up time.
type SealedUserRow = (Uuid, Vec<u8>, Vec<u8>, DateTime<Utc>);

/// Reads one user, opening what is sealed.
pub async fn find_user(
    db: &PgPool,
    pii: &Sealer,
    user_id: Uuid,
) -> Result<Option<User>, StoreError> {
    let row: Option<SealedUserRow> = sqlx::query_as(
        "select user_id, email_sealed, display_name_sealed, created_at
         from users where user_id = $1 and email_sealed is not null",
    )
    .bind(user_id)
    .fetch_optional(db)
    .instrument(service_kit::db_span!("SELECT", "users"))
    .await?;
    let Some((user_id, email, display_name, created_at)) = row else {
        return Ok(None);
    };
    Ok(Some(User {
        user_id,
        email: pii.open(EMAIL, &email)?,
        display_name: pii.open(DISPLAY_NAME, &display_name)?,
        created_at,
    }))
}
