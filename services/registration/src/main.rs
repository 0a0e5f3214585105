//! The `registration` binary: the service, or the `replay` tool. Everything else lives in
//! the library so that tests and tools build the same app.

use registration::config::{Config, IDENTITY, RegistrationCommand};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = service_kit::config::parse(IDENTITY);
    if let Some(RegistrationCommand::Replay(args)) = &config.command {
        return run_replay(&config, args).await;
    }
    service_kit::runner::serve(IDENTITY.name, registration::startup::build(config)).await
}

/// `registration replay …`: no HTTP server, no relay, no span export; read the log,
/// publish, report. The W3C propagator is installed so that replayed messages carry the
/// sign-up's trace context, which the consumer links to.
async fn run_replay(
    config: &Config,
    args: &registration::outbox::replay::ReplayArgs,
) -> anyhow::Result<()> {
    telemetry::install_propagator();
    let db = sqlx::PgPool::connect(&config.service.database_url).await?;
    let topology = messaging::topology::Topology::new(config.service.topology_prefix.clone());
    let pii = config.service.pii.sealer()?;
    let count =
        registration::outbox::replay::replay(&db, &config.service.amqp_url, &topology, args, &pii)
            .await?;
    println!(
        "replayed {count} events to {}",
        topology.queue(&args.to_queue)
    );
    Ok(())
}
