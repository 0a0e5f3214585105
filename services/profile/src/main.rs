//! The `profile` binary: configuration, telemetry, then the app until SIGTERM.

use clap::Parser;
use messaging::{
    dead_letters::{self, ConsumerCommand},
    topology::Topology,
};
use profile::{
    config::Config,
    startup::{App, QUEUE},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(ConsumerCommand::Dlq(command)) = &config.command {
        let dead_letters = Topology::new(config.topology_prefix.clone())
            .queue_names(QUEUE)
            .dead_letter;
        dead_letters::run(&config.amqp_url, &dead_letters, command).await?;
        return Ok(());
    }
    let traces = telemetry::init("profile")?;
    let shutdown = service_kit::shutdown::on_signal();

    let result = match App::build(config).await {
        Ok(app) => app.run(shutdown).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "profile failed");
    }
    // Flush the last spans; blocking, so off the runtime's workers.
    tokio::task::spawn_blocking(move || traces.shutdown()).await?;
    result
}
