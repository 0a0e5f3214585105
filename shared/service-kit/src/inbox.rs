use sqlx::PgConnection;
use uuid::Uuid;

/// Records that `event_id` is being handled, inside the caller's transaction.
///
/// Returns `true` the first time and `false` if the event was already recorded. Because the
/// insert shares the transaction of the effect, either both are committed or neither: a
/// redelivered event finds its id and changes nothing, and a crash before commit leaves no
/// trace, so the redelivery does the work. Two deliveries of the same event at once are
/// serialised by the primary key: the second insert waits for the first transaction and
/// then finds the row.
#[tracing::instrument(
    name = "INSERT inbox",
    skip_all,
    fields(otel.kind = "client", db.system = "postgresql", db.operation.name = "INSERT", db.collection.name = "inbox")
)]
pub async fn record_once(
    tx: &mut PgConnection,
    event_id: Uuid,
    event_type: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "insert into inbox (event_id, event_type) values ($1, $2) on conflict (event_id) do nothing",
    )
    .bind(event_id)
    .bind(event_type)
    .execute(tx)
    .await?;
    Ok(result.rows_affected() == 1)
}
