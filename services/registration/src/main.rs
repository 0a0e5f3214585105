//! The `registration` binary: configuration, telemetry, then the app until SIGTERM.
//! Everything else lives in the library so that tests and tools can reuse it.

use clap::Parser;
use registration::{
    config::{Config, RegistrationCommand},
    replay,
    startup::App,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(RegistrationCommand::Replay(args)) = &config.command {
        return run_replay(&config, args).await;
    }
    let traces = telemetry::init("registration")?;
    let shutdown = service_kit::shutdown::on_signal();

    let result = match App::build(config).await {
        Ok(app) => app.run(shutdown).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "registration failed");
    }
    // Flush the last spans; blocking, so off the runtime's workers.
    tokio::task::spawn_blocking(move || traces.shutdown()).await?;
    result
}

/// `registration replay …`: no HTTP server, no relay; read the log, publish, report.
async fn run_replay(config: &Config, args: &replay::ReplayArgs) -> anyhow::Result<()> {
    let db = sqlx::PgPool::connect(&config.database_url).await?;
    let topology = messaging::topology::Topology::new(config.topology_prefix.clone());
    let count = replay::replay(&db, &config.amqp_url, &topology, args).await?;
    println!(
        "replayed {count} events to {}",
        topology.queue(&args.to_queue)
    );
    Ok(())
}
