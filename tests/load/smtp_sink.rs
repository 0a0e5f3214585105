//! `smtp-sink`: a local SMTP server that prints every mail it receives, for running the
//! system without Docker (where Mailpit plays this part).
//!
//! ```text
//! cargo run -p system-tests --bin smtp-sink -- --port 1025
//! ```

use clap::Parser;
use system_tests::smtp_sink::SmtpSink;

#[derive(Debug, Parser)]
#[command(about = "Prints the mails sent to it; a stand-in for Mailpit")]
struct Args {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 1025)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
