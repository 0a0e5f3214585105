//! The inbox: "have I handled this event already?", answered inside the transaction of the
//! event's effect. Every consuming service has the same `inbox` table; it is defined once,
//! here, and added to each service's own migrations by [`with_inbox_migration`].

use std::borrow::Cow;

use sqlx::{
    PgConnection, SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};
use uuid::Uuid;

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

/// Records that `event_id` is being handled, inside the caller's transaction.
///
/// Returns `true` the first time and `false` if the event was already recorded. Because the
/// insert shares the transaction of the effect, either both are committed or neither: a
/// redelivered event finds its id and changes nothing, and a crash before commit leaves no
/// trace, so the redelivery does the work. Two deliveries of the same event at once are
/// serialised by the primary key: the second insert waits for the first transaction and
/// then finds the row.
pub async fn record_once(
    tx: &mut PgConnection,
    event_id: Uuid,
    event_type: &str,
) -> Result<bool, sqlx::Error> {
    use tracing::Instrument;
    let result = sqlx::query(
        "insert into inbox (event_id, event_type) values ($1, $2) on conflict (event_id) do nothing",
    )
    .bind(event_id)
    .bind(event_type)
    .execute(tx)
    .instrument(crate::db_span!("INSERT", "inbox"))
    .await?;
    Ok(result.rows_affected() == 1)
}
