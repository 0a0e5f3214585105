//! SQL for profiles.

use chrono::{DateTime, Utc};
use serde::Serialize;
use service_kit::{
    db_span,
    pii::{Column, PiiError, SealedColumn, SealedTable, Sealer},
};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

/// The display name's sealing context.
const DISPLAY_NAME: Column = "profiles.display_name";

/// The profiles' personal data, sealed at rest (`service_kit::pii`).
pub static PROFILES: SealedTable = SealedTable {
    table: "profiles",
    columns: &[SealedColumn {
        column: DISPLAY_NAME,
        clear: "display_name",
        sealed: "display_name_sealed",
        hash: None,
    }],
};

/// A profile as `GET /profiles/{id}` shows it. The email address is deliberately not part
/// of it: a profile is what other users may see.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Profile {
    /// The user's id, as registration assigned it.
    pub user_id: Uuid,
    /// The name the user chose.
    pub display_name: String,
    /// When the user signed up.
    pub registered_at: DateTime<Utc>,
    /// When the event that last changed the profile happened.
    pub updated_at: DateTime<Utc>,
    /// When this service wrote that change: `projected_at - updated_at` is how long the
    /// event took to get here.
    pub projected_at: DateTime<Utc>,
}

/// What one event says a profile now is.
#[derive(Debug, Clone)]
pub struct ProfileChange {
    /// The event that says it; the inbox key.
    pub event_id: Uuid,
    /// Whose profile.
    pub user_id: Uuid,
    /// What the profile now holds.
    pub content: ProfileContent,
    /// The event's per-user sequence number.
    pub sequence: i64,
    /// The event's time.
    pub changed_at: DateTime<Utc>,
}

/// What a profile holds after an event.
#[derive(Debug, Clone)]
pub enum ProfileContent {
    /// A visible profile (`user.registered.v1`).
    Shown {
        /// The name to show.
        display_name: String,
        /// When the user signed up.
        registered_at: DateTime<Utc>,
    },
    /// Nothing personal: the user was erased (`user.deleted.v1`); the row stays as a
    /// tombstone so that older events of the user are recognised as stale.
    Erased,
}

impl ProfileChange {
    /// The sealed name; none for a tombstone.
    fn display_name(&self, pii: &Sealer) -> Result<Option<Vec<u8>>, PiiError> {
        match &self.content {
            ProfileContent::Shown { display_name, .. } => {
                pii.seal(DISPLAY_NAME, display_name).map(Some)
            }
            ProfileContent::Erased => Ok(None),
        }
    }

    fn registered_at(&self) -> Option<DateTime<Utc>> {
        match &self.content {
            ProfileContent::Shown { registered_at, .. } => Some(*registered_at),
            ProfileContent::Erased => None,
        }
    }

    fn erased_at(&self) -> Option<DateTime<Utc>> {
        match self.content {
            ProfileContent::Shown { .. } => None,
            ProfileContent::Erased => Some(self.changed_at),
        }
    }
}

/// What applying one event did to the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The profile (or its tombstone) was written.
    Written,
    /// A newer event (higher `sequence`) had already written the profile, or comes later
    /// in the same batch: this one changes nothing, whatever order the broker delivered
    /// them in.
    Stale,
    /// The inbox already had the event: a redelivery, nothing to do.
    AlreadyApplied,
}

/// Records the events in the inbox and writes each user's profile (or tombstone) from the
/// newest of them unless a newer event already did (last writer by sequence wins), in one
/// statement:
/// atomic on its own, one round trip and one commit for the whole batch. Returns what
/// happened to each change, in order.
pub async fn apply_batch(
    db: &PgPool,
    pii: &Sealer,
    event_type: &str,
    changes: &[ProfileChange],
) -> Result<Vec<Applied>, sqlx::Error> {
    // One array per column: the statement unnests them back into rows.
    fn column<T>(changes: &[ProfileChange], field: impl Fn(&ProfileChange) -> T) -> Vec<T> {
        changes.iter().map(field).collect()
    }
    let rows: Vec<(bool, bool)> = sqlx::query_as(service_kit::once_per_event!(
        batch: "select * from unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::timestamptz[],
                                     $6::int8[], $7::timestamptz[], $8::timestamptz[])
                with ordinality as b(event_id, user_id, display_name_sealed, registered_at,
                                     sequence, updated_at, erased_at, position)",
        effect: ", newest as (
             select distinct on (user_id) * from fresh order by user_id, sequence desc),
         written as (
             insert into profiles
                 (user_id, display_name_sealed, registered_at, sequence, updated_at, erased_at)
             select user_id, display_name_sealed, registered_at, sequence, updated_at,
                    erased_at
             from newest
             on conflict (user_id) do update
                set display_name = null,
                    display_name_sealed = excluded.display_name_sealed,
                    registered_at = excluded.registered_at,
                    sequence = excluded.sequence,
                    updated_at = excluded.updated_at,
                    erased_at = excluded.erased_at,
                    projected_at = clock_timestamp()
              where profiles.sequence < excluded.sequence
             returning user_id, sequence)
         select exists (select 1 from fresh f where f.position = b.position),
                exists (select 1 from written w
                        where w.user_id = b.user_id and w.sequence = b.sequence)
         from batch b order by b.position"
    ))
    .bind(event_type)
    .bind(column(changes, |change| change.event_id))
    .bind(column(changes, |change| change.user_id))
    .bind(
        changes
            .iter()
            .map(|change| change.display_name(pii))
            .collect::<Result<Vec<_>, _>>()?,
    )
    .bind(column(changes, ProfileChange::registered_at))
    .bind(column(changes, |change| change.sequence))
    .bind(column(changes, |change| change.changed_at))
    .bind(column(changes, ProfileChange::erased_at))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(first_time, written)| match (first_time, written) {
            (false, _) => Applied::AlreadyApplied,
            (true, true) => Applied::Written,
            (true, false) => Applied::Stale,
        })
        .collect())
}

/// A shown profile as stored: its name sealed.
type StoredProfile = (Uuid, Vec<u8>, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);

/// Reads one profile, opening its name; an erased user's tombstone is no profile.
pub async fn find(
    db: &PgPool,
    pii: &Sealer,
    user_id: Uuid,
) -> Result<Option<Profile>, sqlx::Error> {
    let stored: Option<StoredProfile> = sqlx::query_as(
        "select user_id, display_name_sealed, registered_at, updated_at, projected_at
         from profiles where user_id = $1 and erased_at is null",
    )
    .bind(user_id)
    .fetch_optional(db)
    .instrument(db_span!("SELECT", "profiles"))
    .await?;
    let Some((user_id, name, registered_at, updated_at, projected_at)) = stored else {
        return Ok(None);
    };
    Ok(Some(Profile {
        user_id,
        display_name: pii.open(DISPLAY_NAME, &name)?,
        registered_at,
        updated_at,
        projected_at,
    }))
}
