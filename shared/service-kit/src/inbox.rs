//! The inbox: "have I handled this event already?", answered in the same statement as the
//! event's effect ([`once_per_event!`](crate::once_per_event)). Every consuming service has
//! the same `inbox` table; it is defined once, here, and added to each service's own
//! migrations by [`with_inbox_migration`].

use std::borrow::Cow;

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

/// The inbox's retention: an event id older than `keep_for` is forgotten. It must outlast
/// every way an old event can come back: the producer's event log (a replay; 30 days by
/// default in registration) and a dead-letter queue (a redrive) — the defaults give 45
/// days. The handlers do not rely on it alone: each also keeps the newest `sequence` per
/// user, which turns a repeat of an event whose inbox row is gone away as stale.
pub fn retention(keep_for: std::time::Duration) -> crate::retention::Retention {
    crate::retention::Retention {
        what: "inbox",
        statement: "delete from inbox where event_id in (
                        select event_id from inbox where received_at < $1
                        limit $2 for update skip locked)",
        keep_for,
    }
}

/// The version the inbox migration takes; a consuming service numbers its own from 2.
const INBOX_VERSION: i64 = 1;

/// The service's migrations with the inbox table as migration 1.
///
/// One definition for every consumer: the SQL lives in `shared/service-kit/migrations`, and
/// sqlx records it in each service's database like any of the service's own migrations.
pub fn with_inbox_migration(service_migrations: &Migrator) -> Migrator {
    let inbox = Migration::new(
        INBOX_VERSION,
        Cow::Borrowed("inbox"),
        MigrationType::Simple,
        include_str!("../migrations/0001_inbox.sql").into_sql_str(),
        false,
    );
    let mut migrations = vec![inbox];
    migrations.extend(service_migrations.iter().cloned());
    Migrator::with_migrations(migrations)
}

/// An effect statement for a batch of events that acts only on those arriving for the
/// first time. Three CTEs go in front of the effect:
///
/// - `batch`: the events, from the `select` given as `batch:`. It must yield an
///   `event_id` and a `position` column, e.g.
///   `select * from unnest($2::uuid[], $3::text[]) with ordinality as b(event_id, name, position)`;
/// - `first_time`: the inbox insert of every event id in the batch (`$1` is their type),
///   which returns the ids the inbox did not have yet. It inserts in id order, so two
///   batches that share events take the inbox's key locks in the same order and cannot
///   deadlock;
/// - `fresh`: the rows of `batch` to act on: first-time events, each once (the first
///   position wins if one event is in the batch twice).
///
/// ```text
/// once_per_event!(
///     batch: "select * from unnest($2::uuid[], $3::text[]) with ordinality as b(event_id, name, position)",
///     effect: ", written as (insert into names (event_id, name) select event_id, name from fresh)
///              select exists (select 1 from fresh f where f.position = b.position) from batch b order by b.position"
/// )
/// ```
///
/// A redelivered event finds its id, is not in `fresh`, and the effect writes nothing for
/// it. Two deliveries of one event in two batches at once are serialised by the inbox's
/// primary key: the second statement waits for the first to commit, then finds the row.
///
/// Why one statement: it is atomic on its own, so the inbox rows and the effects are
/// committed together or not at all, and a whole batch costs one round trip and one commit
/// (see [`crate::group_commit`]). A macro so that the SQL stays one compile-time string.
#[macro_export]
macro_rules! once_per_event {
    (batch: $batch:literal, effect: $effect:literal) => {
        concat!(
            "with batch as (",
            $batch,
            "), first_time as (insert into inbox (event_id, event_type) ",
            "select distinct event_id, $1 from batch order by event_id ",
            "on conflict (event_id) do nothing returning event_id), ",
            "fresh as (select distinct on (event_id) batch.* from batch ",
            "join first_time using (event_id) order by event_id, position)",
            $effect
        )
    };
}
