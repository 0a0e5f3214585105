//! `otlp-sink`: a local OTLP/HTTP receiver that counts the spans it gets, for measuring
//! what exporting traces costs without running Jaeger.
//!
//! ```text
//! cargo run --release -p system-tests --bin otlp-sink -- --port 4318
//! ```
//!
//! It counts spans without keeping them, so it can run under a long benchmark.

use std::time::Duration;

use clap::Parser;
use system_tests::otlp_sink::OtlpSink;

#[derive(Debug, Parser)]
#[command(about = "Receives OTLP/HTTP traces and prints how many spans arrived")]
struct Args {
    /// Port to listen on (127.0.0.1); 4318 is OTLP/HTTP's.
    #[arg(long, default_value_t = 4318)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sink = OtlpSink::start_counting_on(args.port).await?;
    println!("otlp-sink listening on {}", sink.endpoint());
    let mut reported = 0;
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticks.tick() => {
                let received = sink.span_count();
                if received != reported {
                    println!("{received} spans received");
                    reported = received;
                }
            }
        }
    }
}
