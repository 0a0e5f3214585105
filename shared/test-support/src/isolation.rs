//! The names one test owns, and removing what its app created under them.

use lapin::{
    Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use uuid::Uuid;

use crate::{AMQP_URL, PATIENCE, PII_KEYS, PII_LOOKUP_KEY, POSTGRES, RETRY_DELAY_MS};

/// The names one test owns, from one random id: the database `test_<id>` and the topology
/// prefix `t<id>.`.
#[derive(Debug, Clone)]
pub struct Isolation {
    database: String,
    database_url: String,
    prefix: String,
}

impl Isolation {
    /// Names from a new random id.
    pub fn new() -> Self {
        let id = Uuid::new_v4().simple();
        let database = format!("test_{id}");
        Self {
            database_url: format!("{POSTGRES}/{database}"),
            database,
            prefix: format!("t{id}."),
        }
    }

    /// The database's name, `test_<id>`; the app creates it when it is built.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The database on the local PostgreSQL, for `--database-url`.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// `t<id>.`, for `--topology-prefix`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The local RabbitMQ, for `--amqp-url`.
    pub fn amqp_url(&self) -> &'static str {
        AMQP_URL
    }

    /// `name` as the app declares it under the prefix, e.g. `t<id>.users`.
    pub fn topology(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `program` and the flags every service takes (`service_kit::config::ServiceArgs`),
    /// set for this test: port 0, this database, the local broker, this prefix, a
    /// shutdown timeout of 5 s and the tests' keys; for the service's
    /// `Config::try_parse_from`.
    pub fn service_args(&self, program: &str) -> Vec<String> {
        self.service_args_with_keys(program, PII_KEYS)
    }

    /// [`Isolation::service_args`] with other sealing keys (`--pii-keys`), e.g. after a
    /// key rotation.
    pub fn service_args_with_keys(&self, program: &str, pii_keys: &str) -> Vec<String> {
        [
            program,
            "--pii-keys",
            pii_keys,
            "--pii-lookup-key",
            PII_LOOKUP_KEY,
            "--http-addr",
            "127.0.0.1:0",
            "--database-url",
            self.database_url(),
            "--amqp-url",
            self.amqp_url(),
            "--topology-prefix",
            self.prefix(),
            "--shutdown-timeout-secs",
            "5",
        ]
        .map(str::to_owned)
        .into()
    }

    /// [`Isolation::service_args`] and the flags every consuming service takes
    /// (`messaging::consumer::args::ConsumerArgs`): a prefetch of 2 and two attempts,
    /// so one retry after [`RETRY_DELAY_MS`].
    pub fn consumer_args(&self, program: &str) -> Vec<String> {
        let mut args = self.service_args(program);
        args.extend(
            [
                "--prefetch",
                "2",
                "--retry-max-attempts",
                "2",
                "--retry-initial-delay-ms",
                RETRY_DELAY_MS,
            ]
            .map(str::to_owned),
        );
        args
    }

    /// The queues a consuming app run with [`Isolation::consumer_args`] declares for its
    /// work `queue` (without the prefix): dead-letter, delay and work queue, in the order
    /// to delete them.
    pub fn consumer_queues(&self, queue: &str) -> Vec<String> {
        let work = self.topology(queue);
        vec![
            format!("{work}.dlq"),
            format!("{work}.delay.{RETRY_DELAY_MS}ms"),
            work,
        ]
    }

    /// What to remove after the test: this database, `exchange` and `queues` (full names,
    /// see [`Isolation::topology`]; the queues are deleted in this order, then the
    /// exchange).
    pub fn cleanup(&self, exchange: String, queues: Vec<String>) -> Cleanup {
        Cleanup {
            database: self.database.clone(),
            exchange,
            queues,
            removed: false,
        }
    }
}

impl Default for Isolation {
    /// The same as [`Isolation::new`]: names from a new random id.
    fn default() -> Self {
        Self::new()
    }
}

/// What a test's app leaves behind: its database, its exchange and the queues it declared.
///
/// [`Cleanup::remove`] removes them; dropped without that (a test panicked), it removes
/// them best effort. Failures are ignored either way: a leftover has a random name and
/// disturbs no other test.
#[derive(Debug)]
pub struct Cleanup {
    database: String,
    exchange: String,
    queues: Vec<String>,
    /// Set once [`Cleanup::remove`] has finished, so `Drop` does not remove again.
    removed: bool,
}

impl Cleanup {
    /// Drops the database (closing any connection still open) and deletes the queues and
    /// the exchange.
    pub async fn remove(mut self) {
        remove(&self.database, &self.queues, &self.exchange).await;
        self.removed = true;
    }
}

impl Drop for Cleanup {
    /// The guard for a test that panicked before removing. `Drop` cannot await and runs on
    /// the test's runtime, so the removal runs on a thread with a runtime of its own.
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let database = std::mem::take(&mut self.database);
        let exchange = std::mem::take(&mut self.exchange);
        let queues = std::mem::take(&mut self.queues);
        let removal = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(async {
                    let removal = remove(&database, &queues, &exchange);
                    let _ = tokio::time::timeout(PATIENCE, removal).await;
                });
            }
        });
        let _ = removal.join();
    }
}

/// Drops `database` (closing any connection still open) and deletes `queues` and
/// `exchange`, each on its own channel (a failed delete closes its channel).
async fn remove(database: &str, queues: &[String], exchange: &str) {
    if let Ok(mut admin) = PgConnection::connect(&format!("{POSTGRES}/postgres")).await {
        let statement = format!("drop database if exists \"{database}\" with (force)");
        let _ = sqlx::query(AssertSqlSafe(statement))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
    }
    let Ok(broker) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await else {
        return;
    };
    for queue in queues {
        if let Ok(channel) = broker.create_channel().await {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
            let _ = channel.close(200, "deleted".into()).await;
        }
    }
    if let Ok(channel) = broker.create_channel().await {
        let _ = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = broker.close(200, "test cleaned up".into()).await;
}
