use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
