//! `registration replay`: send events from the event log again, to one consumer's queue
//! only, keeping their ids. Used to rebuild a read model: wipe the profile database,
//! replay `user.registered.v1` to `profile.user-registered`, and the profiles come back.
//! Events the consumer already handled change nothing (its inbox has their ids).

use chrono::{DateTime, Utc};
use messaging::{
    MessagingError, connection::BrokerConnection, headers::Headers, topology::Topology,
};
use service_kit::pii::{PiiError, Sealer};
use sqlx::PgPool;
use uuid::Uuid;

use super::{OutboxRow, relay::outgoing_message, select_rows};

/// Events read from the log per query.
const PAGE: i64 = 500;

/// Which events to replay, and where to.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The consumer queue to send to, without the test prefix, e.g. `profile.user-registered`.
    #[arg(long)]
    pub to_queue: String,
    /// Only events of this type, e.g. `user.registered.v1`.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only events logged at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Only events logged before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// Only the events of this user.
    #[arg(long)]
    pub user: Option<Uuid>,
}

/// Why a replay stopped. Events sent before the failure stay sent; running the same
/// replay again is safe.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading the event log failed.
    #[error("event log: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker failed, or the target queue does not exist.
    #[error(transparent)]
    Broker(#[from] MessagingError),
    /// An event does not open (its key was dropped from `PII_KEYS`).
    #[error(transparent)]
    Sealing(#[from] PiiError),
}

/// Publishes the selected, already published events, oldest first, to the queue through
/// the replay exchange, where each consumer's work queue is bound under its own name (so
/// no other consumer sees them), each confirmed. Returns how many.
pub async fn replay(
    db: &PgPool,
    amqp_url: &str,
    topology: &Topology,
    args: &ReplayArgs,
    pii: &Sealer,
) -> Result<u64, ReplayError> {
    let queue = topology.queue(&args.to_queue);
    let connection = BrokerConnection::open(amqp_url, "registration replay").await?;
    let publisher = connection.publisher().await?;
    // Fail clearly on a misspelt queue instead of publishing into nowhere.
    publisher.ensure_queue_exists(&queue).await?;
    publisher.declare_replay_exchange(topology).await?;
    let exchange = topology.replay_exchange();

    let mut after = 0;
    let mut replayed = 0;
    loop {
        let page = select_page(db, args, after).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in &page {
            let message = outgoing_message(event, replay_headers(event), pii)?;
            publisher.publish(&exchange, &queue, &message).await?;
            replayed += 1;
        }
    }
    connection.close().await;
    Ok(replayed)
}

async fn select_page(
    db: &PgPool,
    args: &ReplayArgs,
    after: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as(select_rows(
        "where published_at is not null and position > $1
           and ($2::text is null or event_type = $2)
           and ($3::timestamptz is null or created_at >= $3)
           and ($4::timestamptz is null or created_at < $4)
           and ($5::uuid is null or aggregate_id = $5)
         order by position limit $6",
    ))
    .bind(after)
    .bind(&args.event_type)
    .bind(args.since)
    .bind(args.until)
    .bind(args.user)
    .bind(PAGE)
    .fetch_all(db)
    .await
}

/// The original trace context (so the consumer can link to the sign-up's trace) and a
/// mark that this is a replay, which makes the consumer start a new trace with a link
/// instead of adding a late child to a finished one.
fn replay_headers(event: &OutboxRow) -> Headers {
    Headers::default()
        .with_trace_context(&event.trace.restore())
        .replayed()
}
