//! `smtp-sink`: a local SMTP server that prints every mail it receives, for running the
//! system without Docker (where Mailpit plays this part).
//!
//! ```text
//! cargo run -p system-tests --bin smtp-sink -- --port 1025
//! cargo run --release -p system-tests --bin smtp-sink -- --port 1025 --quiet   # under load
//! ```
//!
//! With `--quiet` it only counts the mails (a line every five seconds) and keeps none,
//! which is what a benchmark wants.

use std::time::Duration;

use clap::Parser;
use system_tests::smtp_sink::SmtpSink;

#[derive(Debug, Parser)]
#[command(about = "Prints the mails sent to it; a stand-in for Mailpit")]
struct Args {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 1025)]
    port: u16,
    /// Count the mails instead of printing (and keeping) them.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.quiet {
        return count(args.port).await;
    }
    let sink = SmtpSink::start_on(args.port).await?;
    println!("smtp-sink listening on {}", sink.url());
    let mut shown = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            mails = sink.wait_until(shown + 1) => {
                for mail in &mails[shown..] {
                    println!("--- mail from {} to {}\n{}", mail.mail_from, mail.rcpt_to.join(", "), mail.data.trim_end());
                }
                shown = mails.len();
            }
        }
    }
}

/// `--quiet`: the number of mails every five seconds, while it changes.
async fn count(port: u16) -> anyhow::Result<()> {
    let sink = SmtpSink::start_counting_on(port).await?;
    println!("smtp-sink listening on {} (counting only)", sink.url());
    let mut reported = 0;
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticks.tick() => {
                let received = sink.received();
                if received != reported {
                    println!("{received} mails received");
                    reported = received;
                }
            }
        }
    }
}
