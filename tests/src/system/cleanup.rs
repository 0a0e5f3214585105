//! Removing what a system created: its queues, exchanges and databases.
//!
//! Runs from `Drop`, which cannot await and may run inside or outside a runtime, so it
//! does its work on a thread with a runtime of its own. Failures are ignored: cleanup
//! must never turn a passing test into a failing one, and a leftover is named after
//! a random id, so it cannot disturb another test.

use sqlx::{Connection, PgConnection};

use crate::{broker::Broker, defaults};

use super::{options::Service, topology::Topology};

/// Deletes `topology`'s queues and exchanges and drops its databases, blocking until done.
/// The processes must be gone first, or a consumer would re-declare its queues.
pub(crate) fn remove_everything(topology: Topology) {
    block_on_own_thread(async move { remove(&topology).await });
}

/// Runs `work` to completion on a thread with a runtime of its own, and waits for it: what
/// a `Drop` that must do async work can call, inside a runtime or outside one. A runtime
/// that cannot be built means the work is skipped (cleanup is best effort).
pub fn block_on_own_thread<F>(work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let cleanup = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(work);
        }
    });
    let _ = cleanup.join();
}

async fn remove(topology: &Topology) {
    let broker = Broker::connect().await;
    broker
        .delete(&topology.queue_names(), &topology.exchange_names())
        .await;
    if let Ok(mut admin) =
        PgConnection::connect(&format!("{}/postgres", defaults::POSTGRES_BASE)).await
    {
        for service in Service::ALL {
            let statement = format!(
                "drop database if exists \"{}\" with (force)",
                topology.database(service)
            );
            let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut admin)
                .await;
        }
    }
}
