//! The inbox: "have I handled this event already?", answered in the same statement as the
//! event's effect ([`once_per_event!`](crate::once_per_event)). Every consuming service has
//! the same `inbox` table; it is defined once, here, and added to each service's own
//! migrations by [`with_inbox_migration`].

use std::borrow::Cow;

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

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

/// An effect statement that runs only the first time an event arrives, with the inbox
/// insert as a data-modifying CTE named `first_time` in front of it:
///
/// ```text
/// once_per_event!("insert into profiles (...) select $3, $4 from first_time")
/// ```
///
/// `$1` is the event id and `$2` its type; the effect selects `from first_time`, which has
/// a row only when the inbox insert did. A redelivered event finds its id, `first_time` is
/// empty, and the effect writes nothing. Two deliveries of one event at once are
/// serialised by the inbox's primary key: the second waits for the first statement to
/// commit, then finds the row.
///
/// Why one statement rather than a transaction around two: a single statement is atomic on
/// its own, so the inbox row and the effect are committed together or not at all, and it
/// costs one round trip to the database instead of four (BEGIN, inbox, effect, COMMIT).
/// A macro so that the SQL stays one compile-time string.
#[macro_export]
macro_rules! once_per_event {
    ($effect:literal) => {
        concat!(
            "with first_time as (insert into inbox (event_id, event_type) values ($1, $2) ",
            "on conflict (event_id) do nothing returning event_id) ",
            $effect
        )
    };
}
