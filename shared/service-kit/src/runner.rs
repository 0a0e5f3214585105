//! The body of every service's `main`: logs and traces, the shutdown signal, the service
//! itself, and the flush of the last spans, in that order.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::app::App;

/// The whole of a service binary's run: with `run`'s telemetry and signal, builds the
/// app with `build` (which binds first, so `/healthz` and `/readyz` answer while it waits
/// for its database, see [`App::bind`]) and runs it. A signal while it is still being
/// built stops it there: nothing has started that needs draining, and a migration that
/// was under way is rolled back with its transaction.
pub async fn serve<Fut>(name: &'static str, build: Fut) -> anyhow::Result<()>
where
    Fut: Future<Output = anyhow::Result<App>>,
{
    run(name, |shutdown| async move {
        let app = tokio::select! {
            app = build => app?,
            () = shutdown.cancelled() => {
                tracing::info!("stopped while starting");
                return Ok(());
            }
        };
        app.run(shutdown).await?;
        Ok(())
    })
    .await
}

/// Runs `service` with telemetry installed and a shutdown token that fires on SIGTERM or
/// Ctrl-C; logs its failure, if any, and flushes the traces before returning.
///
/// This is the binaries' edge, so it speaks `anyhow`: whatever stopped the service is
/// reported with its whole cause chain and becomes the process's exit status.
async fn run<F, Fut>(name: &'static str, service: F) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let traces = telemetry::init(name)?;
    let shutdown = crate::shutdown::on_signal();
    let result = service(shutdown).await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "{name} failed");
    }
    // Flush the last spans; blocking, so off the runtime's workers.
    tokio::task::spawn_blocking(move || traces.shutdown()).await?;
    result
}
