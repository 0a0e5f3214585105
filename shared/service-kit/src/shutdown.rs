use std::time::Duration;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// A token that is cancelled on SIGTERM (what Docker and Kubernetes send) or Ctrl-C.
///
/// Every long-running task gets a clone and stops taking new work when it fires; `main`
/// then waits for them to drain. Passing the token, rather than installing signal handlers
/// deep inside the library, lets tests stop an app without sending signals.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received, draining");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Waits for the tracked tasks to finish their in-flight work, at most `timeout`.
///
/// Bounded because an orchestrator kills the process after its grace period anyway; giving
/// up a little earlier lets us flush traces and exit on our own terms. Anything not
/// finished by then was not acked, so the broker redelivers it to another instance.
pub async fn drain(tasks: &TaskTracker, timeout: Duration) {
    tasks.close();
    if tokio::time::timeout(timeout, tasks.wait()).await.is_err() {
        tracing::warn!(
            ?timeout,
            "in-flight work did not finish in time; leaving it to redelivery"
        );
    }
}
