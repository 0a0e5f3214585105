//! The broker definitions, `deploy/rabbitmq/definitions.json`: what the compose RabbitMQ
//! loads at boot, so that every exchange, queue and binding exists before any service
//! starts (an event published before a consumer's first start still reaches it), and
//! each service has a broker user of its own with only the rights it needs.
//!
//! The file is generated from the code by [`definitions`]: the exchanges, queues,
//! arguments and bindings are the ones `messaging::topology` declares, the users' rights
//! are regular expressions over those names, and the password hashes are those of the
//! demo passwords in `deploy/secrets/`. The first test fails when the committed file
//! differs; `UPDATE_DEFINITIONS=1 cargo test -p system-tests --test system
//! broker_definitions` writes it anew. `least_privilege.rs` loads the same definitions
//! (for a test's own names and users) into the local broker and runs the system with them.

use std::collections::BTreeSet;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use messaging::{
    consumer::args::ConsumerSettings,
    retry::RetryPolicy,
    topology::{DeclaredExchange, Topology},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::catalog::{subscriptions, workspace_root};

/// The committed file, relative to the workspace root.
const DEFINITIONS: &str = "deploy/rabbitmq/definitions.json";

/// What a broker user is for, which decides its rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Registration: publishes events and replays.
    Registration,
    /// A consuming service (`email`, `profile`): consumes and forwards within its own
    /// queues.
    Consumer(&'static str),
    /// The operator: the management UI and `rabbitmqctl`-like tools.
    Admin,
}

/// One broker user of the definitions.
#[derive(Debug, Clone)]
pub(crate) struct BrokerUser {
    /// The user's name.
    pub(crate) name: String,
    /// Its password, in clear (only hashed in the definitions).
    pub(crate) password: String,
    /// What it is for.
    pub(crate) role: Role,
}

/// The services' users and the operator's, named `<prefix><service>` (`admin` for the
/// operator), with passwords from `password(name)`.
pub(crate) fn users(name_prefix: &str, password: impl Fn(&str) -> String) -> Vec<BrokerUser> {
    let mut roles = vec![("registration", Role::Registration)];
    let mut consumers: Vec<&'static str> = subscriptions()
        .iter()
        .map(|subscription| subscription.service)
        .collect();
    consumers.dedup();
    roles.extend(
        consumers
            .into_iter()
            .map(|service| (service, Role::Consumer(service))),
    );
    roles.push(("admin", Role::Admin));
    roles
        .into_iter()
        .map(|(stem, role)| {
            let name = format!("{name_prefix}{stem}");
            BrokerUser {
                password: password(&name),
                name,
                role,
            }
        })
        .collect()
}

/// The definitions of `topology` under `retry` with `users`, in RabbitMQ's import format,
/// all in vhost `/`.
pub(crate) fn definitions(topology: &Topology, retry: &RetryPolicy, users: &[BrokerUser]) -> Value {
    let mut exchanges: Vec<DeclaredExchange> = Vec::new();
    let mut queues = Vec::new();
    let mut bindings = Vec::new();
    for subscription in subscriptions() {
        for exchange in topology.declared_consumer_exchanges(subscription.queue) {
            if !exchanges.iter().any(|known| known.name == exchange.name) {
                exchanges.push(exchange);
            }
        }
        queues.extend(topology.declared_queues(subscription.queue, retry));
        bindings.extend(topology.declared_bindings(
            subscription.queue,
            subscription.event.name,
            retry,
        ));
    }
    json!({
        "users": users.iter().map(user_json).collect::<Vec<_>>(),
        "vhosts": [{ "name": "/" }],
        "permissions": users
            .iter()
            .map(|user| permissions_json(topology, user))
            .collect::<Vec<_>>(),
        "exchanges": exchanges.iter().map(|exchange| json!({
            "name": exchange.name,
            "vhost": "/",
            "type": exchange_type(exchange),
            "durable": exchange.options.durable,
            "auto_delete": exchange.options.auto_delete,
            "internal": exchange.options.internal,
            "arguments": {},
        })).collect::<Vec<_>>(),
        "queues": queues.iter().map(|queue| json!({
            "name": queue.name,
            "vhost": "/",
            "durable": queue.options.durable,
            "auto_delete": queue.options.auto_delete,
            "arguments": queue.arguments.iter().cloned().collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "bindings": bindings.iter().map(|binding| json!({
            "source": binding.exchange,
            "vhost": "/",
            "destination": binding.queue,
            "destination_type": "queue",
            "routing_key": binding.routing_key,
            "arguments": {},
        })).collect::<Vec<_>>(),
    })
}

/// A user as RabbitMQ imports it: the password only as its salted SHA-256 hash.
fn user_json(user: &BrokerUser) -> Value {
    let tags: Vec<&str> = match user.role {
        Role::Admin => vec!["administrator"],
        Role::Registration | Role::Consumer(_) => vec![],
    };
    json!({
        "name": user.name,
        "password_hash": password_hash(&user.name, &user.password),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": tags,
    })
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64 of a 4-byte salt followed by
/// SHA-256(salt ‖ password). The salt is derived from the user's name instead of drawn at
/// random, so generating the file again gives the same file.
pub(crate) fn password_hash(name: &str, password: &str) -> String {
    let salt: [u8; 4] = Sha256::digest(format!("salt:{name}").as_bytes())[..4]
        .try_into()
        .expect("a SHA-256 digest has more than 4 bytes");
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    let mut salted = salt.to_vec();
    salted.extend_from_slice(&hasher.finalize());
    BASE64.encode(salted)
}

/// What each role may do in vhost `/`, as RabbitMQ's three regular expressions over
/// exchange and queue names:
///
/// - `configure` (declare, delete): registration its two exchanges; a consumer its own
///   queues and forwarding exchange. A consumer only checks that `users` and `replay`
///   exist (a passive declare needs no right), so it cannot delete them.
/// - `write` (publish to an exchange, bind to a queue): registration `users` and
///   `replay`; a consumer its own queues and forwarding exchange. Nobody writes to the
///   default exchange, through which any queue could be reached.
/// - `read` (consume, bind from an exchange): registration nothing; a consumer its own
///   queues and the exchanges it binds them to.
fn permissions_json(topology: &Topology, user: &BrokerUser) -> Value {
    let published = alternatives([topology.exchange(), topology.replay_exchange()]);
    let (configure, write, read) = match user.role {
        Role::Admin => (".*".to_owned(), ".*".to_owned(), ".*".to_owned()),
        Role::Registration => (published.clone(), published, "^$".to_owned()),
        Role::Consumer(service) => {
            let own = own_names(topology, service);
            let readable = format!("{own}|{published}");
            (own.clone(), own, readable)
        }
    };
    json!({
        "user": user.name,
        "vhost": "/",
        "configure": configure,
        "write": write,
        "read": read,
    })
}

/// `^(a|b)$` for the given names, each escaped.
fn alternatives(names: impl IntoIterator<Item = String>) -> String {
    let escaped: BTreeSet<String> = names.into_iter().map(|name| escape(&name)).collect();
    format!("^({})$", escaped.into_iter().collect::<Vec<_>>().join("|"))
}

/// Every name a consumer service owns: each of its work queues, alone or followed by
/// `.dlq`, `.forward` or `.delay.<n>ms`.
fn own_names(topology: &Topology, service: &str) -> String {
    let work_queues: BTreeSet<String> = subscriptions()
        .iter()
        .filter(|subscription| subscription.service == service)
        .map(|subscription| escape(&topology.queue(subscription.queue)))
        .collect();
    format!(
        r"^({})(\.dlq|\.forward|\.delay\.[0-9]+ms)?$",
        work_queues.into_iter().collect::<Vec<_>>().join("|")
    )
}

/// `name` with the regular-expression characters a queue name can hold escaped.
fn escape(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for character in name.chars() {
        if ".^$|()[]{}*+?\\".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// RabbitMQ's name for an exchange type.
fn exchange_type(exchange: &DeclaredExchange) -> &'static str {
    match exchange.kind {
        lapin::ExchangeKind::Topic => "topic",
        lapin::ExchangeKind::Direct => "direct",
        lapin::ExchangeKind::Fanout => "fanout",
        lapin::ExchangeKind::Headers => "headers",
        lapin::ExchangeKind::Custom(_) => "custom",
    }
}

/// The demo password of `user` from `deploy/secrets/`, where compose reads it too.
fn demo_password(user: &str) -> String {
    let file = if user == "admin" {
        "rabbitmq-admin-password".to_owned()
    } else {
        format!("{user}-amqp-password")
    };
    let path = workspace_root().join("deploy/secrets").join(&file);
    let content = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    content.trim_end_matches(['\r', '\n']).to_owned()
}

/// The definitions a default deployment loads: no prefix, the default retry schedule,
/// the users with the demo passwords.
fn deployment_definitions() -> Value {
    definitions(
        &Topology::default(),
        &ConsumerSettings::default_retry_policy(),
        &users("", demo_password),
    )
}

/// The committed file is exactly what the code declares, with the demo passwords'
/// hashes; `UPDATE_DEFINITIONS=1` writes it.
#[test]
fn the_committed_definitions_are_what_the_code_declares() {
    let generated = deployment_definitions();
    let path = workspace_root().join(DEFINITIONS);
    if std::env::var_os("UPDATE_DEFINITIONS").is_some() {
        let text = serde_json::to_string_pretty(&generated).expect("JSON");
        std::fs::write(&path, format!("{text}\n")).expect("the file is writable");
    }
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{DEFINITIONS}: {error}")),
    )
    .expect("the committed definitions are JSON");
    let differing: Vec<&str> = [
        "users",
        "vhosts",
        "permissions",
        "exchanges",
        "queues",
        "bindings",
    ]
    .into_iter()
    .filter(|section| committed[section] != generated[section])
    .collect();
    assert!(
        differing.is_empty() && committed == generated,
        "{DEFINITIONS} differs from what the code declares in {differing:?}; regenerate it with \
         UPDATE_DEFINITIONS=1 cargo test -p system-tests --test system broker_definitions"
    );
}

/// Nothing in the definitions is what RabbitMQ 4 refuses or removed: every queue is a
/// durable quorum queue (4.x refuses transient non-exclusive queues; classic mirroring
/// is gone, so no `ha-*` policy either), every exchange durable. The consumers' QoS is
/// per consumer, not global (`messaging`'s session has its own test for that).
#[test]
fn the_definitions_use_only_what_rabbitmq_4_accepts() {
    let definitions = deployment_definitions();
    let queues = definitions["queues"].as_array().expect("a list of queues");
    assert!(!queues.is_empty());
    for queue in queues {
        assert_eq!(queue["durable"], true, "transient queue {}", queue["name"]);
        assert_eq!(
            queue["auto_delete"], false,
            "auto-delete queue {}",
            queue["name"]
        );
        assert_eq!(
            queue["arguments"]["x-queue-type"], "quorum",
            "queue {} is not a quorum queue",
            queue["name"]
        );
    }
    for exchange in definitions["exchanges"].as_array().expect("a list") {
        assert_eq!(
            exchange["durable"], true,
            "transient exchange {}",
            exchange["name"]
        );
    }
    assert!(definitions.get("policies").is_none_or(|policies| {
        policies.as_array().is_none_or(|policies| {
            policies
                .iter()
                .all(|policy| !policy["definition"].to_string().contains("ha-"))
        })
    }));
}

/// Each permission pattern admits the names its role needs and none of another
/// service's: checked on the names themselves, without a broker (`least_privilege.rs`
/// checks the broker's answers).
#[test]
fn each_user_may_touch_only_its_own_names() {
    let topology = Topology::default();
    let definitions = deployment_definitions();
    let permissions = definitions["permissions"].as_array().expect("a list");
    let pattern = |user: &str, kind: &str| -> String {
        permissions
            .iter()
            .find(|permission| permission["user"] == user)
            .and_then(|permission| permission[kind].as_str())
            .unwrap_or_else(|| panic!("no {kind} permission for {user}"))
            .to_owned()
    };
    let email = pattern("email", "write");
    for own in [
        "email.user-registered",
        "email.user-registered.dlq",
        "email.user-registered.forward",
        "email.user-deleted.delay.1000ms",
    ] {
        assert!(
            matches(&email, own),
            "email may not write to {own}: {email}"
        );
    }
    for foreign in [
        "users",
        "",
        "amq.default",
        "profile.user-registered",
        "profile.user-registered.forward",
        "email.user-registeredX",
        "xemail.user-registered",
    ] {
        assert!(
            !matches(&email, foreign),
            "email may write to {foreign:?}: {email}"
        );
    }
    let registration = pattern("registration", "write");
    assert!(matches(&registration, &topology.exchange()));
    assert!(matches(&registration, &topology.replay_exchange()));
    assert!(!matches(&registration, "email.user-registered"));
    assert!(!matches(&registration, "amq.default"));
    assert_eq!(pattern("registration", "read"), "^$");
}

/// Whether RabbitMQ's permission pattern admits `name`. RabbitMQ searches the name
/// with the pattern (Erlang's `re`, a PCRE), unanchored, as `Regex::is_match` does; the
/// generated patterns anchor themselves with `^…$`.
fn matches(pattern: &str, name: &str) -> bool {
    regex::Regex::new(pattern)
        .unwrap_or_else(|error| panic!("{pattern} is not a regular expression: {error}"))
        .is_match(name)
}
