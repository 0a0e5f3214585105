//! Looking into a dead-letter queue and sending its messages back to work.
//!
//! Both operations use `basic.get` with manual acks on one channel: a message that is not
//! acked (listing, or not selected for redrive) returns to the DLQ when the channel
//! closes, so a crash half-way through loses nothing. A redriven copy is confirmed by the
//! broker before its DLQ original is acked; at worst a redrive duplicates a message, and
//! the consumers' inbox makes the duplicate harmless.

use std::collections::HashSet;

use lapin::{
    Channel,
    message::BasicGetMessage,
    options::{BasicAckOptions, BasicGetOptions},
};
use serde::Serialize;

use crate::{
    MessagingError,
    connection::BrokerConnection,
    headers::{self, Headers},
    publisher::{confirm_channel, publish_raw},
    topology::{DELIVERY_LIMIT, QueueNames},
};

/// The `dlq` subcommand of a consumer binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// Print each dead-lettered message as one JSON line (id, type, kind, reason, attempts).
    List,
    /// Move dead-lettered messages back to their work queue, keeping their ids and trace
    /// context; the attempt counter starts again at 1.
    Redrive {
        /// Redrive every message in the DLQ.
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        all: bool,
        /// Redrive the message with this message id (repeat for several).
        #[arg(long)]
        id: Vec<String>,
    },
}

/// One dead-lettered message, as `dlq list` prints it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetter {
    /// The AMQP message id (the event id).
    pub message_id: String,
    /// The AMQP `type` property (the event type).
    #[serde(rename = "type")]
    pub event_type: String,
    /// `permanent` or `exhausted` (ours, or the broker's delivery limit); `broker` for
    /// anything else RabbitMQ dead-lettered on its own.
    pub kind: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// Attempts made before it was dead-lettered (`>20` for the broker's delivery limit).
    pub attempts: String,
    /// The work queue it came from, where a redrive sends it.
    pub original_queue: String,
}

/// Runs `command` against each of a service's dead-letter queues (one per event type it
/// consumes) and prints the result on stdout: one JSON line per message for `list`, the
/// total for `redrive`.
pub async fn run(
    amqp_url: &str,
    dead_letter_queues: &[String],
    command: &DlqCommand,
) -> Result<(), MessagingError> {
    let connection = BrokerConnection::open(amqp_url, "dlq tool").await?;
    let result = run_on(&connection, dead_letter_queues, command).await;
    connection.close().await;
    result
}

async fn run_on(
    connection: &BrokerConnection,
    dead_letter_queues: &[String],
    command: &DlqCommand,
) -> Result<(), MessagingError> {
    match command {
        DlqCommand::List => {
            for queue in dead_letter_queues {
                for letter in list(connection, queue).await? {
                    println!("{}", serde_json::to_string(&letter).unwrap_or_default());
                }
            }
        }
        DlqCommand::Redrive { all, id } => {
            let selection: Option<HashSet<String>> = (!*all).then(|| id.iter().cloned().collect());
            let mut count = 0;
            for queue in dead_letter_queues {
                count += redrive(connection, queue, selection.as_ref()).await?;
            }
            println!("redriven {count}");
        }
    }
    Ok(())
}

/// The messages in the DLQ, left in place.
pub async fn list(
    connection: &BrokerConnection,
    dead_letter_queue: &str,
) -> Result<Vec<DeadLetter>, MessagingError> {
    let channel = connection.inner().create_channel().await?;
    let messages = fetch_all(&channel, dead_letter_queue).await?;
    let letters = messages.iter().map(describe).collect();
    // Closing without acking puts every fetched message back.
    channel.close(200, "listed".into()).await?;
    Ok(letters)
}

/// Sends the selected messages (all when `selection` is `None`) back to the queue they
/// failed in and removes them from the DLQ. Returns how many were redriven.
pub async fn redrive(
    connection: &BrokerConnection,
    dead_letter_queue: &str,
    selection: Option<&HashSet<String>>,
) -> Result<usize, MessagingError> {
    let channel = confirm_channel(connection.inner()).await?;
    let result = redrive_on(&channel, dead_letter_queue, selection).await;
    // Closing also puts back whatever was fetched and not redriven, on failure too.
    channel.close(200, "redriven".into()).await?;
    result
}

async fn redrive_on(
    channel: &Channel,
    dead_letter_queue: &str,
    selection: Option<&HashSet<String>>,
) -> Result<usize, MessagingError> {
    let messages = fetch_all(channel, dead_letter_queue).await?;
    let mut redriven = 0;
    for message in &messages {
        let letter = describe(message);
        if selection.is_some_and(|ids| !ids.contains(&letter.message_id)) {
            continue;
        }
        let original = &message.delivery.properties;
        let headers = Headers::of(original.headers().as_ref()).redriven_from(dead_letter_queue);
        let properties = original.clone().with_headers(headers.into_table());
        // Through the original queue's forwarding exchange, which its consumer's broker
        // user may write to (not the default exchange, which reaches every queue).
        let names = QueueNames::of_work_queue(&letter.original_queue);
        publish_raw(
            channel,
            &names.forward,
            &letter.original_queue,
            &message.delivery.data,
            properties,
            &letter.message_id,
        )
        .await?;
        message.delivery.ack(BasicAckOptions::default()).await?;
        redriven += 1;
    }
    Ok(redriven)
}

/// Fetches, unacked, every message the queue hands out until it has none ready.
///
/// Each fetched message stays held by this channel, so the broker never hands the same one
/// out twice and the loop ends; [`FETCH_LIMIT`] bounds it anyway against a queue that
/// producers fill faster than we read.
async fn fetch_all(channel: &Channel, queue: &str) -> Result<Vec<BasicGetMessage>, MessagingError> {
    let mut messages = Vec::new();
    while messages.len() < FETCH_LIMIT {
        match channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await?
        {
            Some(message) => messages.push(message),
            None => break,
        }
    }
    Ok(messages)
}

/// At most this many messages are listed or redriven by one run of the tool.
const FETCH_LIMIT: usize = 100_000;

fn describe(message: &BasicGetMessage) -> DeadLetter {
    let properties = &message.delivery.properties;
    let headers = Headers::of(properties.headers().as_ref());
    let property = |value: &Option<lapin::types::ShortString>| {
        value.as_ref().map(ToString::to_string).unwrap_or_default()
    };
    let (kind, reason, attempts) = match headers.text(headers::DEAD_LETTER_KIND) {
        // One of ours: the consumer said what and why.
        Some(kind) => (
            kind,
            headers
                .text(headers::DEAD_LETTER_REASON)
                .unwrap_or_default(),
            headers.text(headers::ATTEMPT).unwrap_or_default(),
        ),
        // One the broker moved here itself: only its own headers say why.
        None => broker_verdict(&headers),
    };
    DeadLetter {
        message_id: property(properties.message_id()),
        event_type: property(properties.kind()),
        kind,
        reason,
        attempts,
        // Our own dead letters say where they came from; one the broker moved here itself
        // (the work queue's delivery limit) only has the broker's `x-first-death-queue`.
        original_queue: headers
            .text(headers::ORIGINAL_QUEUE)
            .or_else(|| headers.text(headers::FIRST_DEATH_QUEUE))
            .unwrap_or_default(),
    }
}

/// Kind, reason and deliveries of a message RabbitMQ dead-lettered on its own. In this
/// system that is the work queue's delivery limit: the message was delivered again and
/// again without an ack, because its consumer crashed or was stopped on it each time. (The
/// broker's own `x-delivery-count` does not survive the dead-lettering, so the count is
/// the limit's.)
fn broker_verdict(headers: &Headers) -> (String, String, String) {
    match headers.text(headers::FIRST_DEATH_REASON).as_deref() {
        Some("delivery_limit") => (
            "exhausted".to_owned(),
            format!(
                "RabbitMQ's delivery limit: delivered more than {DELIVERY_LIMIT} times without \
                 an ack (the consumer crashed or was stopped on it each time)"
            ),
            format!(">{DELIVERY_LIMIT}"),
        ),
        Some(other) => (
            "broker".to_owned(),
            format!("dead-lettered by RabbitMQ: {other}"),
            String::new(),
        ),
        None => (String::new(), String::new(), String::new()),
    }
}
