//! The fixture every test starts from: its own exchange and queues on the local broker
//! (removed again when the fixture is dropped, even by a panic), a consumer run through
//! `messaging::consumer::run`, a handler that answers from a script and records each call,
//! raw publishing with lapin, and the one wait helper.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use chrono::Utc;
use events::{Envelope, UserRegisteredV1};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    message::BasicGetMessage,
    options::{
        BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
        ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
};
use messaging::{
    connection::{BrokerConnection, BrokerStatus},
    consumer::{ConsumerConfig, Handler, QueueConsumer, TraceMode},
    dead_letters::{self, DeadLetter},
    outcome::HandlerOutcome,
    retry::RetryPolicy,
    topology::{QueueNames, Topology},
};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The local RabbitMQ, guest/guest.
pub(crate) const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The work queue every test consumes from (under its own prefix).
pub(crate) const QUEUE: &str = "test.user-registered";

/// The routing key (and AMQP `type`) of the test events.
pub(crate) const ROUTING_KEY: &str = "user.registered.v1";

/// How long a test waits for what the broker does in milliseconds. Only a failing test
/// waits this long.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// How often [`eventually`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The delay before the first retry; doubled for each further one.
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(100);

/// Asks `probe` every few milliseconds until it answers `Some`, and returns the value;
/// fails the test, naming `what` was awaited, if `within` passes first.
pub(crate) async fn eventually<T>(
    what: impl fmt::Display,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A new `user.registered.v1` event for a made-up user.
pub(crate) fn sign_up(name: &str) -> Envelope<UserRegisteredV1> {
    let user_id = Uuid::now_v7();
    Envelope::new(
        "/registration",
        user_id.to_string(),
        1,
        UserRegisteredV1 {
            user_id,
            email: format!("{}@example.org", name.to_lowercase()),
            display_name: name.to_owned(),
            registered_at: Utc::now(),
        },
    )
}

/// One test's own corner of the broker: a random prefix for the exchange and queues, a
/// connection to publish and look with, and the cleanup that removes it all on drop.
pub(crate) struct TestBroker {
    /// The prefixed names, as the consumer uses them.
    pub(crate) topology: Topology,
    /// The work queue, its DLQ and (through `delay_queue`) its delay queues.
    pub(crate) names: QueueNames,
    /// The schedule the consumers of this test run with.
    pub(crate) retry: RetryPolicy,
    /// Publishes the test events; in confirm mode.
    channel: Channel,
    /// Kept open for the channel above and for peeking.
    connection: Connection,
    /// What the DLQ tooling takes.
    dlq_tool: BrokerConnection,
    /// Stops every consumer of this test and deletes its queues and exchange.
    cleanup: Cleanup,
}

impl TestBroker {
    /// A fresh prefix, with `retries` retries of [`FIRST_DELAY`], doubled each time
    /// (`retries + 1` attempts in all).
    pub(crate) async fn start(retries: u32) -> Self {
        let topology = Topology::new(format!("t{}.", Uuid::new_v4().simple()));
        let names = topology.queue_names(QUEUE);
        let retry = RetryPolicy::exponential(FIRST_DELAY, retries);
        let mut queues = vec![names.work.clone(), names.dead_letter.clone()];
        queues.extend(retry.delays().iter().map(|delay| names.delay_queue(*delay)));
        // Armed before anything can fail, so that whatever gets declared is removed.
        let cleanup = Cleanup {
            queues,
            exchanges: topology
                .declared_consumer_exchanges(QUEUE)
                .into_iter()
                .map(|exchange| exchange.name)
                .collect(),
            consumers: CancellationToken::new(),
        };
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ runs on 127.0.0.1:5672 (guest/guest)");
        let channel = connection.create_channel().await.expect("a channel opens");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        let dlq_tool = BrokerConnection::open(AMQP_URL, "messaging broker test")
            .await
            .expect("the DLQ tool connects");
        Self {
            topology,
            names,
            retry,
            channel,
            connection,
            dlq_tool,
            cleanup,
        }
    }

    /// Every delay queue of this test's schedule, in order.
    pub(crate) fn delay_queues(&self) -> Vec<String> {
        self.retry
            .delays()
            .iter()
            .map(|delay| self.names.delay_queue(*delay))
            .collect()
    }

    /// Starts `messaging::consumer::run` on the work queue with `handler` and returns once
    /// it reports connected, which it does only after its queues are declared and bound.
    pub(crate) async fn start_consumer(
        &self,
        handler: &Arc<ScriptedHandler>,
        prefetch: u16,
    ) -> RunningConsumer {
        let config = ConsumerConfig {
            topology: self.topology.clone(),
            queue: QUEUE,
            prefetch,
            retry: self.retry.clone(),
            trace_mode: TraceMode::Child,
            declare_shared_exchanges: true,
        };
        let status = BrokerStatus::default();
        let shutdown = self.cleanup.consumers.child_token();
        let consumer = QueueConsumer::new::<UserRegisteredV1, _>(config, handler.clone());
        let task = tokio::spawn({
            let (status, shutdown) = (status.clone(), shutdown.clone());
            async move { messaging::consumer::run(AMQP_URL, vec![consumer], status, shutdown).await }
        });
        eventually("the consumer to connect", PATIENCE, async || {
            status.is_connected().then_some(())
        })
        .await;
        RunningConsumer { shutdown, task }
    }

    /// Publishes `event` the way a producer does (JSON envelope; id, type and content type
    /// in the AMQP properties) and waits for the broker's confirm.
    pub(crate) async fn publish(&self, event: &Envelope<UserRegisteredV1>) {
        let body = serde_json::to_vec(event).expect("an envelope serialises");
        self.publish_body(&event.id.to_string(), &body).await;
    }

    /// Publishes `body` as a `user.registered.v1` message with id `message_id`, whatever
    /// the bytes are, and waits for the confirm. `mandatory`, so that a message published
    /// before the work queue is bound fails the test instead of vanishing.
    pub(crate) async fn publish_body(&self, message_id: &str, body: &[u8]) {
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(message_id))
            .with_type(ShortString::from(ROUTING_KEY))
            .with_content_type(ShortString::from(events::envelope::CONTENT_TYPE));
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirmation = self
            .channel
            .basic_publish(
                self.topology.exchange().as_str().into(),
                ROUTING_KEY.into(),
                options,
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "the broker must route and accept test message {message_id}: {confirmation:?}"
        );
    }

    /// Messages ready in `queue` (not counting those delivered and not yet acked).
    pub(crate) async fn ready(&self, queue: &str) -> u32 {
        let channel = self.connection.create_channel().await.expect("a channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let count = channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|error| panic!("{queue} exists: {error}"))
            .message_count();
        let _ = channel.close(200, "counted".into()).await;
        count
    }

    /// The messages ready in `queue`, left in place: fetched without an ack, and returned
    /// to the queue when the channel closes.
    pub(crate) async fn peek(&self, queue: &str) -> Vec<BasicGetMessage> {
        let channel = self.connection.create_channel().await.expect("a channel");
        let mut messages = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap_or_else(|error| panic!("basic.get on {queue}: {error}"))
        {
            messages.push(message);
        }
        let _ = channel.close(200, "peeked".into()).await;
        messages
    }

    /// Plays a consumer that crashes on every message: takes each message of the work
    /// queue and hands it back unacked (`nack` with requeue, what the broker sees when a
    /// consumer's connection dies), until the work queue is empty because the broker's
    /// delivery limit moved the messages to the DLQ. Returns how many deliveries it took.
    pub(crate) async fn crash_on_every_delivery(&self) -> usize {
        let channel = self.connection.create_channel().await.expect("a channel");
        let mut deliveries = 0;
        while let Some(message) = channel
            .basic_get(
                self.names.work.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .expect("basic.get on the work queue")
        {
            deliveries += 1;
            assert!(
                deliveries <= 100,
                "the delivery limit never moved the message"
            );
            message
                .delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
                .expect("nack");
        }
        let _ = channel.close(200, "crashed enough".into()).await;
        deliveries
    }

    /// What `dlq list` shows for this test's DLQ.
    pub(crate) async fn dead_letters(&self) -> Vec<DeadLetter> {
        dead_letters::list(&self.dlq_tool, &self.names.dead_letter)
            .await
            .expect("the DLQ can be listed")
    }

    /// Waits until the DLQ holds exactly `count` messages, and returns them.
    ///
    /// Listing fetches the messages and returns them by closing its channel, which the
    /// broker applies a moment after the close; this also waits until all `count` are
    /// ready again, so that a redrive right after (which takes as many messages as the
    /// queue reports ready) sees them all.
    pub(crate) async fn wait_for_dead_letters(&self, count: usize) -> Vec<DeadLetter> {
        let dlq = &self.names.dead_letter;
        let letters = eventually(
            format!("{count} message(s) in {dlq}"),
            PATIENCE,
            async || {
                let letters = self.dead_letters().await;
                (letters.len() == count).then_some(letters)
            },
        )
        .await;
        let ready = u32::try_from(count).expect("a test dead-letters a handful of messages");
        eventually(
            format!("{dlq} ready again after listing"),
            PATIENCE,
            async || (self.ready(dlq).await == ready).then_some(()),
        )
        .await;
        letters
    }

    /// `dlq redrive` (of everything when `ids` is `None`); how many were redriven.
    pub(crate) async fn redrive(&self, ids: Option<&[Uuid]>) -> usize {
        let selection: Option<HashSet<String>> =
            ids.map(|ids| ids.iter().map(Uuid::to_string).collect());
        dead_letters::redrive(&self.dlq_tool, &self.names.dead_letter, selection.as_ref())
            .await
            .expect("the DLQ can be redriven")
    }
}

/// A header of a fetched message as text, for assertions.
pub(crate) fn header(message: &BasicGetMessage, name: &str) -> Option<String> {
    let headers = message.delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::LongUInt(value) => Some(value.to_string()),
        AMQPValue::LongInt(value) => Some(value.to_string()),
        AMQPValue::LongLongInt(value) => Some(value.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// The AMQP message id of a fetched message.
pub(crate) fn message_id(message: &BasicGetMessage) -> String {
    message
        .delivery
        .properties
        .message_id()
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Removes a test's queues and exchanges when the test ends, passed or panicked.
///
/// `Drop` cannot await and may run while the test's runtime is unwinding, so the work
/// happens on a thread with a runtime of its own; the test waits for it. Consumers are
/// stopped first, so that none re-declares a queue that was just deleted. Failures are
/// ignored: cleanup must never fail a test, and a leftover has a random name.
struct Cleanup {
    /// Work, DLQ and every delay queue.
    queues: Vec<String>,
    /// The test's events, replay and forwarding exchanges.
    exchanges: Vec<String>,
    /// The parent of every consumer's shutdown token.
    consumers: CancellationToken,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.consumers.cancel();
        let queues = std::mem::take(&mut self.queues);
        let exchanges = std::mem::take(&mut self.exchanges);
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let _ = tokio::time::timeout(PATIENCE, delete(&queues, &exchanges)).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Deletes `queues` and `exchanges`, each on its own channel (a failed delete closes it).
async fn delete(queues: &[String], exchanges: &[String]) {
    let Ok(connection) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await
    else {
        return;
    };
    for queue in queues {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
            let _ = channel.close(200, "deleted".into()).await;
        }
    }
    for exchange in exchanges {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
            let _ = channel.close(200, "deleted".into()).await;
        }
    }
    let _ = connection.close(200, "cleaned up".into()).await;
}

/// A consumer task started by [`TestBroker::start_consumer`].
pub(crate) struct RunningConsumer {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningConsumer {
    /// Asks the consumer to stop, as a service's shutdown signal does; returns at once.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for the consumer to have stopped: handlers in flight finished and acked, the
    /// connection closed.
    pub(crate) async fn stopped(self) {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the consumer stops within the patience")
            .expect("the consumer task does not panic");
    }

    /// Stops the consumer and waits until it has.
    pub(crate) async fn stop(self) {
        self.begin_shutdown();
        self.stopped().await;
    }
}

/// What the [`ScriptedHandler`] answers for one event.
#[derive(Debug)]
pub(crate) enum Script {
    /// These outcomes, one per call, then `Done` for every later call.
    Answers(VecDeque<HandlerOutcome>),
    /// The same outcome on every call.
    Always(HandlerOutcome),
    /// Waits until the test releases it, then `Done`: a handler in flight.
    HoldUntil(Arc<Notify>),
}

impl Script {
    /// `Retry` for the first `times` calls, then `Done`.
    pub(crate) fn retry_first(times: usize, reason: &str) -> Self {
        Self::Answers(
            std::iter::repeat_n(HandlerOutcome::Retry(reason.to_owned()), times).collect(),
        )
    }
}

/// One call of the handler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    /// The event it was called with.
    pub(crate) event_id: Uuid,
    /// 1 for the first call with this event, 2 for the next, …
    pub(crate) attempt: usize,
    /// When the call started.
    pub(crate) at: Instant,
}

/// A handler that records every call and answers from a script per event id; an event
/// without a script is `Done`.
#[derive(Debug, Default)]
pub(crate) struct ScriptedHandler {
    scripts: Mutex<HashMap<Uuid, Script>>,
    calls: Mutex<Vec<Call>>,
}

impl ScriptedHandler {
    /// A handler with no scripts: every event is `Done`.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// From now on, answers calls with `id` from `script`.
    pub(crate) fn script(&self, id: Uuid, script: Script) {
        lock(&self.scripts).insert(id, script);
    }

    /// From now on, calls with `id` are `Done`.
    pub(crate) fn succeed(&self, id: Uuid) {
        lock(&self.scripts).remove(&id);
    }

    /// The calls with `id`, in order.
    pub(crate) fn calls_for(&self, id: Uuid) -> Vec<Call> {
        lock(&self.calls)
            .iter()
            .filter(|call| call.event_id == id)
            .copied()
            .collect()
    }

    /// Every call, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// Waits until the handler has been called `count` times with `id`; returns those calls.
    pub(crate) async fn wait_for_calls(&self, id: Uuid, count: usize) -> Vec<Call> {
        eventually(
            format!("{count} handler call(s) with event {id}"),
            PATIENCE,
            async || {
                let calls = self.calls_for(id);
                (calls.len() >= count).then_some(calls)
            },
        )
        .await
    }

    /// Records the call and picks the answer; `Err` means: hold on the returned gate first.
    fn answer(&self, id: Uuid) -> Result<HandlerOutcome, Arc<Notify>> {
        {
            let mut calls = lock(&self.calls);
            let attempt = calls.iter().filter(|call| call.event_id == id).count() + 1;
            calls.push(Call {
                event_id: id,
                attempt,
                at: Instant::now(),
            });
        }
        match lock(&self.scripts).get_mut(&id) {
            None => Ok(HandlerOutcome::Done),
            Some(Script::Answers(answers)) => {
                Ok(answers.pop_front().unwrap_or(HandlerOutcome::Done))
            }
            Some(Script::Always(outcome)) => Ok(outcome.clone()),
            Some(Script::HoldUntil(gate)) => Err(gate.clone()),
        }
    }
}

impl Handler<UserRegisteredV1> for ScriptedHandler {
    async fn handle(&self, event: Envelope<UserRegisteredV1>) -> HandlerOutcome {
        match self.answer(event.id) {
            Ok(outcome) => outcome,
            Err(gate) => {
                gate.notified().await;
                HandlerOutcome::Done
            }
        }
    }
}

/// Locks a mutex, ignoring poisoning: a panicking test fails anyway, and its cleanup and
/// messages should not pile up more panics on top.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
