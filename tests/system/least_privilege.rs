//! Least privilege, on the real servers: each service runs as a broker user and a
//! database role of its own, with the rights the definitions give it and nothing more,
//! and what it may not do is refused by RabbitMQ and PostgreSQL themselves.
//!
//! The broker users come from the same generator as `deploy/rabbitmq/definitions.json`
//! ([`crate::broker_definitions`]), for this test's own names, and are loaded with
//! `rabbitmqctl import_definitions` as the compose broker loads the file at boot (so the
//! test also shows that RabbitMQ accepts the definitions, and that the services'
//! declarations agree with them: a queue declared with other arguments than the
//! definitions' would close the consumer's channel with `PRECONDITION_FAILED`). The
//! database roles are made by the statements of `deploy/postgres/service-role.sql`, which
//! the compose PostgreSQL runs at its first start: one login role per service owning its
//! database, no `CONNECT` for anyone else.
//!
//! `RABBITMQCTL` names the command (default `rabbitmqctl`, as on this machine; with the
//! compose broker, `docker compose exec -T rabbitmq rabbitmqctl`).

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use lapin::{
    BasicProperties, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};
use messaging::{retry::RetryPolicy, topology::Topology as BrokerTopology};
use sqlx::{Connection as _, PgConnection};
use system_tests::{
    defaults,
    eventually::{PATIENCE, eventually},
    system::{Options, Service, TestSystem, Topology, block_on_own_thread},
};

use crate::{
    broker_definitions::{BrokerUser, Role, definitions, users},
    catalog::workspace_root,
};

/// Every service runs as its own broker user and database role: sign-ups flow, a retry
/// and a redrive go through the consumer's own forwarding exchange, a replay through the
/// replay exchange; no log line holds a password; and each forbidden operation is
/// refused by the server.
#[tokio::test(flavor = "multi_thread")]
async fn each_service_runs_with_only_its_own_rights_and_the_servers_refuse_the_rest() {
    let topology = Topology::new(Options::default().retry_schedule());
    let broker_users = BrokerUsers::create(&topology);
    let roles = DatabaseRoles::create(&topology).await;
    let options = Options {
        topology: Some(topology.clone()),
        amqp_urls: Service::ALL
            .iter()
            .map(|service| (*service, broker_users.url(*service)))
            .collect(),
        database_urls: Service::ALL
            .iter()
            .map(|service| (*service, roles.url(&topology, *service)))
            .collect(),
        // The definitions declare the producer's exchanges; the consumers may not.
        extra_env: vec![("DECLARE_SHARED_EXCHANGES".to_owned(), "false".to_owned())],
        ..Options::default()
    };
    let system = TestSystem::start_with(options).await;

    // Allowed: the flow, a retry, a dead letter and its redrive, a replay.
    system
        .sign_up_and_wait("least-privilege@example.org", "Least Privilege")
        .await;
    let retried = "lp-retried@example.org";
    system.smtp.fail_recipient(retried, Some(1));
    system.sign_up_and_wait(retried, "Retried").await;
    assert_eq!(system.smtp.rcpt_attempts(retried).len(), 2, "one retry");
    let dead = "lp-dead@example.org";
    system.smtp.reject_recipient(dead, None);
    system.registration().sign_up_ok(dead, "Dead").await;
    let letters = eventually("the rejected mail's dead letter", PATIENCE, async || {
        let letters = system.tool(Service::Email).dlq_list().await;
        if letters.len() == 1 {
            Ok(letters)
        } else {
            Err(format!("{} dead letters", letters.len()))
        }
    })
    .await;
    system.smtp.heal_recipient(dead);
    let id = letters[0]["message_id"].as_str().expect("a message id");
    system
        .tool(Service::Email)
        .dlq_redrive(&[id.to_owned()])
        .await;
    system.emails().wait_for_sent(dead).await;
    let replayed = system
        .tool(Service::Registration)
        .run_ok(&["replay", "--to-queue", "profile.user-registered"])
        .await;
    assert!(replayed.starts_with("replayed 3 events"), "{replayed}");

    // No password in any log line: every URL the services were given holds one.
    let passwords: Vec<String> = Service::ALL
        .iter()
        .flat_map(|service| {
            [
                broker_users.user(*service).password.clone(),
                password(&roles.role(*service)),
            ]
        })
        .collect();
    let mut lines = 0;
    for entry in std::fs::read_dir(system.log_dir()).expect("the services' logs") {
        let path = entry.expect("a log file").path();
        let log = std::fs::read_to_string(&path).expect("a readable log");
        lines += log.lines().count();
        for secret in &passwords {
            assert!(
                !log.contains(secret.as_str()),
                "{} logs a password",
                path.display()
            );
        }
    }
    println!(
        "{lines} log lines, none with any of the {} passwords",
        passwords.len()
    );
    assert!(lines > 10, "the services logged what they did");

    // Refused, by the broker.
    let names = BrokerTopology::new(topology.prefix());
    let email_queue = names.queue("email.user-registered");
    let refusals = [
        broker_users
            .consume(Service::Registration, &email_queue)
            .await,
        broker_users.consume(Service::Profile, &email_queue).await,
        broker_users
            .publish(Service::Email, &names.exchange(), "user.registered.v1")
            .await,
        broker_users
            .publish(Service::Email, "", &names.queue("profile.user-registered"))
            .await,
        broker_users
            .publish(
                Service::Profile,
                &names.queue_names("email.user-registered").forward,
                &email_queue,
            )
            .await,
        broker_users
            .delete_exchange(Service::Email, &names.exchange())
            .await,
        broker_users
            .declare_queue(Service::Registration, &names.queue("stray"))
            .await,
    ];
    for (operation, answer) in &refusals {
        println!("broker: {operation}: {answer}");
        assert!(
            answer.contains("ACCESS_REFUSED") || answer.contains("ACCESS-REFUSED"),
            "{operation} was not refused: {answer}"
        );
    }

    // Refused, by the database.
    for (service, foreign) in [
        (Service::Profile, Service::Email),
        (Service::Email, Service::Registration),
        (Service::Registration, Service::Profile),
    ] {
        let answer = roles.connect_as(&topology, service, foreign).await;
        println!(
            "database: {} connecting to {}'s database: {answer}",
            service.name(),
            foreign.name()
        );
        assert!(
            answer.contains("permission denied"),
            "{} reached {}'s database: {answer}",
            service.name(),
            foreign.name()
        );
    }
}

/// The test's broker users, loaded with `rabbitmqctl import_definitions`, deleted again
/// on drop.
struct BrokerUsers {
    users: Vec<BrokerUser>,
}

impl BrokerUsers {
    /// Loads the definitions of `topology`'s names with one user per service, named
    /// `<id>-<service>`, each with a fresh random password.
    fn create(topology: &Topology) -> Self {
        let schedule = topology.retry_schedule();
        let retry = RetryPolicy::exponential(
            Duration::from_millis(schedule.initial_delay_ms),
            schedule.max_attempts - 1,
        );
        let users = users(&format!("{}-", topology.id()), |_| {
            uuid::Uuid::new_v4().simple().to_string()
        });
        let definitions = definitions(&BrokerTopology::new(topology.prefix()), &retry, &users);
        let guard = Self { users };
        rabbitmqctl(
            &["import_definitions"],
            Some(&serde_json::to_vec(&definitions).expect("JSON")),
        );
        guard
    }

    fn user(&self, service: Service) -> &BrokerUser {
        let role = match service {
            Service::Registration => Role::Registration,
            Service::Email | Service::Profile => Role::Consumer(service.name()),
        };
        self.users
            .iter()
            .find(|user| user.role == role)
            .expect("a user per service")
    }

    /// `service`'s AMQP URL, as its own user.
    fn url(&self, service: Service) -> String {
        let user = self.user(service);
        format!(
            "amqp://{}:{}@{}/%2f",
            user.name,
            user.password,
            defaults::AMQP_ADDR
        )
    }

    async fn connect(&self, service: Service) -> Connection {
        Connection::connect(&self.url(service), ConnectionProperties::default())
            .await
            .expect("the user may connect")
    }

    /// Tries to consume `queue` as `service`'s user; the broker's answer.
    async fn consume(&self, service: Service, queue: &str) -> (String, String) {
        let connection = self.connect(service).await;
        let channel = connection.create_channel().await.expect("a channel");
        let answer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map(|_| "consuming".to_owned());
        (
            format!("{} consumes {queue}", service.name()),
            describe(answer),
        )
    }

    /// Tries to publish a confirmed message as `service`'s user; the broker's answer.
    async fn publish(&self, service: Service, exchange: &str, key: &str) -> (String, String) {
        let connection = self.connect(service).await;
        let channel = connection.create_channel().await.expect("a channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        let published = async {
            channel
                .basic_publish(
                    exchange.into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    b"{}",
                    BasicProperties::default(),
                )
                .await?
                .await?;
            // A refused publish closes the channel; the next call reports why.
            channel
                .exchange_declare(
                    "amq.direct".into(),
                    ExchangeKind::Direct,
                    lapin::options::ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>("published".to_owned())
        };
        let answer = describe(published.await);
        let target = if exchange.is_empty() {
            "the default exchange"
        } else {
            exchange
        };
        (
            format!("{} publishes to {target} ({key})", service.name()),
            answer,
        )
    }

    /// Tries to delete `exchange` as `service`'s user; the broker's answer.
    async fn delete_exchange(&self, service: Service, exchange: &str) -> (String, String) {
        let connection = self.connect(service).await;
        let channel = connection.create_channel().await.expect("a channel");
        let answer = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await
            .map(|()| "deleted".to_owned());
        (
            format!("{} deletes exchange {exchange}", service.name()),
            describe(answer),
        )
    }

    /// Tries to declare `queue` as `service`'s user; the broker's answer.
    async fn declare_queue(&self, service: Service, queue: &str) -> (String, String) {
        let connection = self.connect(service).await;
        let channel = connection.create_channel().await.expect("a channel");
        let answer = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|_| "declared".to_owned());
        (
            format!("{} declares queue {queue}", service.name()),
            describe(answer),
        )
    }
}

impl Drop for BrokerUsers {
    fn drop(&mut self) {
        for user in &self.users {
            rabbitmqctl(&["delete_user", &user.name], None);
        }
    }
}

/// The broker's answer, as text: what happened, or the error it closed the channel with.
fn describe(answer: Result<String, lapin::Error>) -> String {
    answer.unwrap_or_else(|error| error.to_string())
}

/// Runs `rabbitmqctl` (or `$RABBITMQCTL`) with `args`, `input` on its standard input;
/// fails the test unless it succeeds.
fn rabbitmqctl(args: &[&str], input: Option<&[u8]>) {
    let command = std::env::var("RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".to_owned());
    let mut words = command.split_whitespace();
    let program = words.next().expect("a command");
    let mut child = Command::new(program)
        .args(words)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{command} runs (set RABBITMQCTL): {error}"));
    let mut stdin = child.stdin.take().expect("piped");
    if let Some(input) = input {
        stdin.write_all(input).expect("rabbitmqctl reads its input");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("rabbitmqctl finishes");
    assert!(
        output.status.success(),
        "{command} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The test's database roles, one per service, each owning its service's database;
/// dropped on drop (after the system dropped the databases).
struct DatabaseRoles {
    prefix: String,
}

impl DatabaseRoles {
    /// For each service, the statements of `deploy/postgres/service-role.sql`: a login
    /// role named like the service's database (`<id>_<service>`), the database created
    /// owned by it, and `CONNECT` on it revoked from everyone else.
    async fn create(topology: &Topology) -> Self {
        let guard = Self {
            prefix: topology.id().to_owned(),
        };
        let path = workspace_root().join("deploy/postgres/service-role.sql");
        let script = std::fs::read_to_string(&path).expect("deploy/postgres/service-role.sql");
        let mut admin = superuser().await;
        for service in Service::ALL {
            let role = guard.role(service);
            for statement in psql_statements(&script, &role, &password(&role)) {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await
                    .expect("the superuser creates roles and databases");
            }
        }
        guard
    }

    /// The role, and so the database, of `service` (`Topology::database`'s name).
    fn role(&self, service: Service) -> String {
        format!("{}_{}", self.prefix, service.name())
    }

    /// `service`'s database URL, as its own role.
    fn url(&self, topology: &Topology, service: Service) -> String {
        let role = self.role(service);
        format!(
            "postgres://{role}:{}@{}/{}",
            password(&role),
            defaults::POSTGRES_ADDR,
            topology.database(service)
        )
    }

    /// Connects to `foreign`'s database as `service`'s role and reads; the server's
    /// answer.
    async fn connect_as(&self, topology: &Topology, service: Service, foreign: Service) -> String {
        let role = self.role(service);
        let url = format!(
            "postgres://{role}:{}@{}/{}",
            password(&role),
            defaults::POSTGRES_ADDR,
            topology.database(foreign)
        );
        match PgConnection::connect(&url).await {
            Ok(mut connection) => sqlx::query_scalar::<_, i64>("select count(*) from inbox")
                .fetch_one(&mut connection)
                .await
                .map_or_else(
                    |error| error.to_string(),
                    |count| format!("read {count} rows"),
                ),
            Err(error) => error.to_string(),
        }
    }
}

impl Drop for DatabaseRoles {
    fn drop(&mut self) {
        let roles: Vec<String> = Service::ALL
            .iter()
            .map(|service| self.role(*service))
            .collect();
        block_on_own_thread(async move {
            let mut admin = superuser().await;
            for role in roles {
                let statement = format!("drop role if exists \"{role}\"");
                let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await;
            }
        });
    }
}

/// A test role's password. The local server trusts every local connection, so it is
/// not checked here; the compose server checks it (scram-sha-256).
fn password(role: &str) -> String {
    format!("{role}-password")
}

/// The statements of a psql script with its `:"role"` and `:'password'` variables
/// substituted (quoted as psql quotes them), comments dropped, split at `;`. Enough for
/// `service-role.sql`, whose values hold no quote.
fn psql_statements(script: &str, role: &str, password: &str) -> Vec<String> {
    assert!(!role.contains('"') && !password.contains('\''));
    let text: String = script
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(":\"role\"", &format!("\"{role}\""))
        .replace(":'password'", &format!("'{password}'"));
    text.split(';')
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn superuser() -> PgConnection {
    PgConnection::connect(&format!("{}/postgres", defaults::POSTGRES_BASE))
        .await
        .expect("the local PostgreSQL, as the superuser")
}
