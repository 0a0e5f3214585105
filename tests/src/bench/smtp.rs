//! The SMTP sink's limit: the project's own sink, in process, fed welcome-sized mails by
//! lettre at 16 at once, two ways:
//!
//! - lettre's pooled `AsyncSmtpTransport` as it comes. Its sockets do not set
//!   `TCP_NODELAY`, so the small writes at the end of each mail wait for the peer's
//!   delayed ACK (about 40 ms on Linux loopback): this is what a client pays today.
//! - lettre's `AsyncSmtpConnection` over sockets we connect with `TCP_NODELAY`: what
//!   the sink itself can take, which is the figure the limit uses.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    address::Envelope,
    transport::smtp::{PoolConfig, client::AsyncSmtpConnection, extension::ClientId},
};
use serde::Serialize;
use tokio::{net::TcpStream, time::Instant};

use crate::smtp_sink::SmtpSink;

/// Mails in flight, as many as the email service's default prefetch.
pub(super) const CONCURRENCY: usize = 16;

/// The sink's rate both ways.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SmtpRate {
    /// Mails sent through lettre's pooled transport.
    pub pooled_mails: usize,
    /// Their rate, mails/s.
    pub pooled_per_second: f64,
    /// Mails sent over `TCP_NODELAY` connections.
    pub nodelay_mails: usize,
    /// Their rate, mails/s.
    pub nodelay_per_second: f64,
}

impl SmtpRate {
    /// The sink's capacity: the better of the two.
    pub fn best(&self) -> f64 {
        self.pooled_per_second.max(self.nodelay_per_second)
    }
}

/// Sends up to `mails` each way (for at most `time_limit` each).
pub(super) async fn measure(mails: usize, time_limit: Duration) -> anyhow::Result<SmtpRate> {
    let sink = SmtpSink::start_counting_on(0).await?;
    let (pooled_mails, pooled_per_second) = pooled(&sink, mails, time_limit).await?;
    let (nodelay_mails, nodelay_per_second) = nodelay(&sink, mails, time_limit).await?;
    Ok(SmtpRate {
        pooled_mails,
        pooled_per_second,
        nodelay_mails,
        nodelay_per_second,
    })
}

/// A welcome-sized mail to `index`.
fn mail(index: usize) -> anyhow::Result<Message> {
    Ok(Message::builder()
        .from("Sign-up demo <welcome@example.org>".parse()?)
        .to(format!("user{index}@bench.example.org").parse()?)
        .subject(format!("Welcome, User {index}!"))
        .body(format!(
            "Hello User {index},\n\nthank you for signing up. Your account is ready.\n\n\
             -- \nThe sign-up demo\n"
        ))?)
}

async fn pooled(
    sink: &SmtpSink,
    mails: usize,
    time_limit: Duration,
) -> anyhow::Result<(usize, f64)> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port())
        .pool_config(PoolConfig::new().max_size(CONCURRENCY as u32))
        .build();
    let started = Instant::now();
    let deadline = started + time_limit;
    let sent: Vec<bool> = stream::iter(0..mails)
        .map(|index| {
            let transport = transport.clone();
            async move {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                transport.send(mail(index)?).await?;
                anyhow::Ok(true)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let count = sent.into_iter().filter(|sent| *sent).count();
    Ok((count, count as f64 / started.elapsed().as_secs_f64()))
}

async fn nodelay(
    sink: &SmtpSink,
    mails: usize,
    time_limit: Duration,
) -> anyhow::Result<(usize, f64)> {
    let started = Instant::now();
    let deadline = started + time_limit;
    let per_connection = mails.div_ceil(CONCURRENCY);
    let mut tasks = Vec::new();
    for connection in 0..CONCURRENCY {
        let addr = sink.addr();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let hello = ClientId::Domain("bench.example.org".to_owned());
            let mut smtp =
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello).await?;
            let mut sent = 0;
            for n in 0..per_connection {
                if Instant::now() >= deadline {
                    break;
                }
                let message = mail(connection * per_connection + n)?;
                let envelope: &Envelope = message.envelope();
                smtp.send(envelope, &message.formatted()).await?;
                sent += 1;
            }
            let _ = smtp.quit().await;
            anyhow::Ok(sent)
        }));
    }
    let mut count = 0;
    for task in tasks {
        count += task.await??;
    }
    Ok((count, count as f64 / started.elapsed().as_secs_f64()))
}
