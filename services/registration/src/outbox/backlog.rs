//! The outbox backlog as gauges: the one number that says whether events are leaving.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Every few seconds: how many events wait in the outbox and how old the oldest is
/// (`outbox_backlog_events`, `outbox_oldest_unpublished_age_seconds`). A growing backlog
/// or age means the relay cannot publish: broker down, or the relay is not running.
///
/// Measured from the table rather than counted by the relay, so it is right whichever
/// instance wrote or published the rows, and still moves when no relay runs at all.
pub async fn report_backlog(db: PgPool, shutdown: CancellationToken) {
    metrics::describe_gauge!(
        "outbox_backlog_events",
        "Events committed but not yet published."
    );
    metrics::describe_gauge!(
        "outbox_oldest_unpublished_age_seconds",
        "Age of the oldest unpublished event."
    );
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let backlog: Result<(i64, Option<f64>), _> = sqlx::query_as(
            "select count(*), extract(epoch from now() - min(created_at))::float8
             from outbox where published_at is null",
        )
        .fetch_one(&db)
        .await;
        match backlog {
            Ok((count, oldest)) => {
                metrics::gauge!("outbox_backlog_events").set(count as f64);
                metrics::gauge!("outbox_oldest_unpublished_age_seconds").set(oldest.unwrap_or(0.0));
            }
            Err(error) => tracing::debug!(error = %error, "cannot measure the outbox backlog"),
        }
    }
}
