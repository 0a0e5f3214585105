use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Serves `router` on an already bound `listener` until `shutdown` fires, then stops
/// accepting and waits for the requests in flight.
///
/// Taking a bound listener (not an address) lets tests bind port 0 and read the port back.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The end of every service's `run`: serve HTTP next to the background `tasks` (consumer,
/// relay, samplers) until `shutdown`, then let everything drain within `timeout`.
///
/// The server only returns early on an I/O error; the token is cancelled then too, so the
/// background tasks never outlive the HTTP side.
pub async fn serve_and_drain(
    listener: TcpListener,
    router: Router,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    timeout: Duration,
) -> std::io::Result<()> {
    let served = serve(listener, router, shutdown.clone()).await;
    shutdown.cancel();
    crate::shutdown::drain(&tasks, timeout).await;
    tracing::info!("drained, exiting");
    served
}
