//! The AsyncAPI document of the event flows, `docs/asyncapi.yaml`, against the code and
//! against the official AsyncAPI CLI.
//!
//! The document is written by hand for readers; these tests keep it true. The first one
//! reads every name it checks from the code that declares it (the topology, the headers,
//! each consuming service's queue, each event type), so renaming a queue, a header, a
//! queue argument or an event type without updating the document fails here with the
//! difference spelled out. The second runs `asyncapi validate` from npm, pinned to
//! [`ASYNCAPI_CLI`] and installed on first use under the target directory. Neither needs
//! a broker or a database.
//!
//! To add an event type or a consumer, add it to [`events`] or [`subscriptions`]
//! (`catalog.rs`): the rest follows from the code.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use events::envelope::STRUCTURED_CONTENT_TYPE;
use lapin::ExchangeKind;
use messaging::{
    consumer::args::ConsumerSettings,
    headers,
    topology::{DeclaredQueue, QueueNames, Topology},
};
use opentelemetry::propagation::TextMapPropagator;
use serde_json::Value;

use crate::catalog::{EventType, Subscription, events, subscriptions, workspace_root};

/// The document, relative to the workspace root.
const DOCUMENT: &str = "docs/asyncapi.yaml";

/// The pinned `@asyncapi/cli` release: the last 4.x, the newest major that runs on
/// Node.js 20 (5.x and later require Node.js 24).
const ASYNCAPI_CLI: &str = "4.1.1";

/// The document describes the exchange, every queue (work, delay and dead-letter) with
/// the arguments the code declares it with, every header the code reads or writes, and
/// every event type with its committed schema; and describes nothing the code does not
/// have.
#[test]
fn the_asyncapi_document_describes_what_the_code_declares() {
    let document = Document::load();
    let mut differences = Vec::new();

    differences.extend(exchange_differences(&document));
    differences.extend(queue_differences(&document));
    differences.extend(message_differences(&document));
    differences.extend(header_differences(&document));

    assert!(
        differences.is_empty(),
        "{DOCUMENT} and the code disagree; update the document (or the code):\n  - {}",
        differences.join("\n  - ")
    );
}

/// `asyncapi validate` (the official CLI) finds no error and no warning in the document,
/// with its `$ref`s to the committed schema and sample files resolved.
#[test]
fn the_official_asyncapi_cli_validates_the_document() {
    let cli = asyncapi_cli();
    let output = run(cli
        .command()
        .arg("validate")
        .arg(workspace_root().join(DOCUMENT))
        .args(["--fail-severity", "warn", "--diagnostics-format", "stylish"]));
    let report = text(&output);
    println!("== asyncapi validate {DOCUMENT} ==\n{report}");
    assert!(
        output.status.success(),
        "asyncapi validate found problems in {DOCUMENT}:\n{report}"
    );
}

// ---------------------------------------------------------------- the exchange

/// Each event type is a routing-key channel on the exchange as the code declares it, with
/// an operation that sends to it; no other routing key is documented.
fn exchange_differences(document: &Document) -> Vec<String> {
    let exchange = Topology::default().declared_exchange();
    let expected = serde_json::json!({
        "name": exchange.name,
        "type": exchange_kind_name(&exchange.kind),
        "durable": exchange.options.durable,
        "autoDelete": exchange.options.auto_delete,
        "vhost": "/",
    });
    let mut differences: Vec<String> = events()
        .into_iter()
        .flat_map(|event| routing_key_differences(document, event, &expected))
        .collect();
    let known: BTreeSet<&str> = events().iter().map(|event| event.name).collect();
    for channel in document.channels_where("routingKey") {
        if !known.contains(channel.address.as_str()) {
            differences.push(format!(
                "channel `{}` is a routing key, but the code has no event type `{}`",
                channel.address, channel.address
            ));
        }
    }
    differences
}

/// What the document must say about the routing key of one event type on `exchange`.
fn routing_key_differences(document: &Document, event: EventType, exchange: &Value) -> Vec<String> {
    let Some(channel) = document.channel(event.name) else {
        return vec![format!(
            "no channel with address `{}` (the routing key of event type {} on exchange {})",
            event.name, event.name, exchange["name"]
        )];
    };
    let amqp = &channel.value["bindings"]["amqp"];
    let mut differences = Vec::new();
    if amqp["is"] != "routingKey" {
        differences.push(format!(
            "channel `{}`: bindings.amqp.is is {}, not \"routingKey\"",
            event.name, amqp["is"]
        ));
    }
    differences.extend(compare_fields(
        &format!("channel `{}`: bindings.amqp.exchange", event.name),
        &amqp["exchange"],
        exchange,
    ));
    differences.extend(document.missing_operation(&channel, "send", "registration's publish"));
    differences.extend(document.missing_message(&channel, event));
    differences
}

/// The name RabbitMQ (and the AMQP binding's `exchange.type`) gives an exchange kind.
fn exchange_kind_name(kind: &ExchangeKind) -> String {
    match kind {
        ExchangeKind::Custom(name) => name.clone(),
        ExchangeKind::Direct => "direct".to_owned(),
        ExchangeKind::Fanout => "fanout".to_owned(),
        ExchangeKind::Headers => "headers".to_owned(),
        ExchangeKind::Topic => "topic".to_owned(),
    }
}

// ---------------------------------------------------------------- the queues

/// The role a queue plays for its consumer, which decides who must be documented to
/// send to it and receive from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Work,
    DeadLetter,
    Delay,
}

impl Role {
    fn of(names: &QueueNames, queue: &str) -> Self {
        if queue == names.work {
            Self::Work
        } else if queue == names.dead_letter {
            Self::DeadLetter
        } else {
            Self::Delay
        }
    }

    /// How a message names the role.
    fn label(self) -> &'static str {
        match self {
            Self::Work => "work queue",
            Self::DeadLetter => "dead-letter queue",
            Self::Delay => "delay queue",
        }
    }

    /// The operations the document must have on a queue of this role: (action, who).
    fn operations(self, service: &str) -> Vec<(&'static str, String)> {
        match self {
            Self::Work => vec![("receive", format!("{service}'s consumer"))],
            Self::Delay => vec![("send", format!("{service}'s retry"))],
            Self::DeadLetter => vec![
                ("send", format!("{service}'s dead-lettering")),
                ("receive", format!("`{service} dlq`")),
            ],
        }
    }
}

/// Every queue every consumer declares with the default retry schedule is a queue channel
/// with the code's options and arguments, the event's message and the operations of its
/// role; the work queue is bound to the exchange with the event type. No other queue is
/// documented.
fn queue_differences(document: &Document) -> Vec<String> {
    let topology = Topology::default();
    let retry = ConsumerSettings::default_retry_policy();
    let mut differences = Vec::new();
    let mut declared = BTreeSet::new();
    for subscription in subscriptions() {
        let names = topology.queue_names(subscription.queue);
        for queue in topology.declared_queues(subscription.queue, &retry) {
            let role = Role::of(&names, &queue.name);
            differences.extend(one_queue_differences(document, &subscription, role, &queue));
            declared.insert(queue.name);
        }
    }
    for channel in document.channels_where("queue") {
        if !declared.contains(&channel.address) {
            differences.push(format!(
                "channel `{}` is a queue the code does not declare",
                channel.address
            ));
        }
    }
    differences
}

/// What the document must say about one declared queue.
fn one_queue_differences(
    document: &Document,
    subscription: &Subscription,
    role: Role,
    queue: &DeclaredQueue,
) -> Vec<String> {
    let Some(channel) = document.channel(&queue.name) else {
        return vec![format!(
            "no channel with address `{}` ({}'s {})",
            queue.name,
            subscription.service,
            role.label()
        )];
    };
    let amqp = &channel.value["bindings"]["amqp"];
    let context = format!("channel `{}`", queue.name);
    let mut differences = Vec::new();
    if amqp["is"] != "queue" {
        differences.push(format!(
            "{context}: bindings.amqp.is is {}, not \"queue\"",
            amqp["is"]
        ));
    }
    let options = serde_json::json!({
        "name": queue.name,
        "durable": queue.options.durable,
        "exclusive": queue.options.exclusive,
        "autoDelete": queue.options.auto_delete,
        "vhost": "/",
    });
    differences.extend(compare_fields(
        &format!("{context}: bindings.amqp.queue"),
        &amqp["queue"],
        &options,
    ));
    let arguments: serde_json::Map<String, Value> = queue.arguments.iter().cloned().collect();
    differences.extend(compare_maps(
        &format!("{context}: bindings.amqp.x-arguments"),
        &amqp["x-arguments"],
        &arguments,
    ));
    differences.extend(binding_differences(
        &context,
        amqp,
        subscription,
        &queue.name,
    ));
    differences.extend(document.missing_message(&channel, subscription.event));
    for (action, who) in role.operations(subscription.service) {
        differences.extend(document.missing_operation(&channel, action, &who));
    }
    differences
}

/// The queue's `x-bindings` lists exactly the bindings the code declares for it: for a
/// work queue the events exchange with the event type and the replay exchange with its
/// name, for every queue the consumer's forwarding exchange with its name.
fn binding_differences(
    context: &str,
    amqp: &Value,
    subscription: &Subscription,
    queue: &str,
) -> Option<String> {
    let retry = ConsumerSettings::default_retry_policy();
    let expected: BTreeSet<(String, String)> = Topology::default()
        .declared_bindings(subscription.queue, subscription.event.name, &retry)
        .into_iter()
        .filter(|binding| binding.queue == queue)
        .map(|binding| (binding.exchange, binding.routing_key))
        .collect();
    let documented: BTreeSet<(String, String)> = amqp["x-bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|binding| {
            (
                binding["exchange"].as_str().unwrap_or_default().to_owned(),
                binding["routingKey"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    (documented != expected).then(|| {
        format!(
            "{context}: bindings.amqp.x-bindings lists (exchange, routing key) {documented:?}, the code binds {expected:?}"
        )
    })
}

// ---------------------------------------------------------------- the messages

/// Each event type has a message: its name, the structured CloudEvents content type, the
/// AMQP `type` property, and a payload that `$ref`s the committed schema file.
fn message_differences(document: &Document) -> Vec<String> {
    let mut differences = Vec::new();
    for event in events() {
        let Some(message) = document.message(event.name) else {
            differences.push(format!(
                "no message named `{}` in components.messages",
                event.name
            ));
            continue;
        };
        let context = format!("message `{}`", event.name);
        let content_type = message
            .get("contentType")
            .unwrap_or(&document.root["defaultContentType"]);
        if content_type != STRUCTURED_CONTENT_TYPE {
            differences.push(format!(
                "{context}: contentType is {content_type}, the code sends \"{STRUCTURED_CONTENT_TYPE}\""
            ));
        }
        let message_type = &message["bindings"]["amqp"]["messageType"];
        if message_type != event.name {
            differences.push(format!(
                "{context}: bindings.amqp.messageType is {message_type}, the AMQP `type` property is \"{}\"",
                event.name
            ));
        }
        differences.extend(payload_differences(&context, message, event));
    }
    differences
}

/// The payload is a relative `$ref` (directly, or as the `schema` of a multi-format
/// schema) to the committed schema file that the event type names, and that file uses
/// no keyword whose meaning differs between JSON Schema 2020-12 (what it declares) and
/// draft-07 (what an AsyncAPI 3.0 schema is read as).
fn payload_differences(context: &str, message: &Value, event: EventType) -> Vec<String> {
    let payload = &message["payload"];
    let reference = payload["$ref"]
        .as_str()
        .or_else(|| payload["schema"]["$ref"].as_str());
    let Some(reference) = reference else {
        return vec![format!(
            "{context}: the payload is not a $ref to {}",
            event.schema_path
        )];
    };
    let documented = workspace_root().join("docs").join(reference);
    let committed = workspace_root().join(event.schema_path);
    let (Ok(documented), Ok(committed)) = (documented.canonicalize(), committed.canonicalize())
    else {
        return vec![format!(
            "{context}: the payload's $ref `{reference}` or the schema `{}` does not exist",
            event.schema_path
        )];
    };
    if documented != committed {
        return vec![format!(
            "{context}: the payload's $ref `{reference}` is not the committed schema `{}`",
            event.schema_path
        )];
    }
    newer_keywords(&committed)
        .into_iter()
        .map(|keyword| {
            format!(
                "{context}: {} uses `{keyword}`, which an AsyncAPI 3.0 schema (draft-07) does not know; give the payload a schemaFormat the CLI can check",
                event.schema_path
            )
        })
        .collect()
}

/// JSON Schema keywords of 2019-09/2020-12 that draft-07 lacks or reads otherwise.
const NEWER_KEYWORDS: [&str; 11] = [
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentSchemas",
    "dependentRequired",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$anchor",
    "minContains",
    "maxContains",
];

/// The [`NEWER_KEYWORDS`] used anywhere in the schema file.
fn newer_keywords(schema: &Path) -> BTreeSet<String> {
    fn walk(value: &Value, found: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    if NEWER_KEYWORDS.contains(&key.as_str()) {
                        found.insert(key.clone());
                    }
                    walk(value, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(schema).expect("the committed schema is readable");
    let value: Value = serde_json::from_str(&text).expect("the committed schema is JSON");
    let mut found = BTreeSet::new();
    walk(&value, &mut found);
    found
}

// ---------------------------------------------------------------- the headers

/// Each message's headers schema describes exactly the headers the code knows (trace
/// context, `messaging::headers`, and those RabbitMQ adds when it dead-letters), each
/// with a type and a description.
fn header_differences(document: &Document) -> Vec<String> {
    let known: BTreeSet<String> = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .fields()
        .map(str::to_owned)
        .chain(headers::ALL.map(str::to_owned))
        .chain(headers::BROKER_HEADERS.map(str::to_owned))
        .collect();
    let mut differences = Vec::new();
    for event in events() {
        let Some(message) = document.message(event.name) else {
            continue; // reported by message_differences
        };
        let context = format!("message `{}`: headers", event.name);
        let schema = document.resolve(&message["headers"]);
        let documented = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for name in known.iter().filter(|name| !documented.contains_key(*name)) {
            differences.push(format!(
                "{context}: `{name}` (a header in the code) is missing"
            ));
        }
        for (name, property) in &documented {
            if !known.contains(name) {
                differences.push(format!(
                    "{context}: `{name}` is not a header the code knows (renamed?)"
                ));
            }
            for field in ["type", "description"] {
                if property.get(field).is_none() {
                    differences.push(format!("{context}: `{name}` has no {field}"));
                }
            }
        }
        // A reason is cut to `MAX_REASON_CHARS` characters and a `…`.
        let reason_length = Value::from(headers::MAX_REASON_CHARS + 1);
        for name in [headers::RETRY_REASON, headers::DEAD_LETTER_REASON] {
            let documented = documented
                .get(name)
                .and_then(|property| property.get("maxLength"))
                .unwrap_or(&Value::Null);
            if *documented != reason_length {
                differences.push(format!(
                    "{context}: `{name}` has maxLength {documented}, the code cuts reasons to \
                     {reason_length} characters"
                ));
            }
        }
    }
    differences
}

// ---------------------------------------------------------------- comparisons

/// Each field of `expected` against the same field of `documented`.
fn compare_fields(context: &str, documented: &Value, expected: &Value) -> Vec<String> {
    let expected = expected.as_object().cloned().unwrap_or_default();
    expected
        .iter()
        .filter(|(field, value)| documented.get(field.as_str()) != Some(*value))
        .map(|(field, value)| {
            format!(
                "{context}.{field} is {}, the code declares {value}",
                documented.get(field.as_str()).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

/// `documented` has exactly the entries of `expected`: none missing, none different,
/// none extra.
fn compare_maps(
    context: &str,
    documented: &Value,
    expected: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let mut differences = compare_fields(context, documented, &Value::Object(expected.clone()));
    let extra = documented
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !expected.contains_key(*name));
    for (name, value) in extra {
        differences.push(format!(
            "{context}.{name} is {value}, but the code declares no `{name}`"
        ));
    }
    differences
}

// ---------------------------------------------------------------- reading the document

/// The document, parsed, with the look-ups the checks need. Channels are found by
/// address (the queue or routing key), never by their id in the document, so ids can
/// change freely.
struct Document {
    root: Value,
}

/// One channel of the document.
struct Channel<'a> {
    /// Its key under `channels`.
    id: &'a str,
    /// Its `address`: the queue name or the routing key.
    address: String,
    value: &'a Value,
}

impl Document {
    fn load() -> Self {
        let path = workspace_root().join(DOCUMENT);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        let root = serde_norway::from_str(&text)
            .unwrap_or_else(|error| panic!("{DOCUMENT} is not YAML: {error}"));
        Self { root }
    }

    fn channels(&self) -> impl Iterator<Item = Channel<'_>> {
        self.root["channels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(id, value)| Channel {
                id,
                address: value["address"].as_str().unwrap_or_default().to_owned(),
                value,
            })
    }

    /// The channel whose address is `address`.
    fn channel(&self, address: &str) -> Option<Channel<'_>> {
        self.channels().find(|channel| channel.address == address)
    }

    /// The channels whose AMQP binding `is` the given kind (`queue`, `routingKey`).
    fn channels_where(&self, is: &str) -> impl Iterator<Item = Channel<'_>> {
        self.channels()
            .filter(move |channel| channel.value["bindings"]["amqp"]["is"] == is)
    }

    /// The message in `components.messages` named `name`.
    fn message(&self, name: &str) -> Option<&Value> {
        self.root["components"]["messages"]
            .as_object()?
            .values()
            .find(|message| message["name"] == name)
    }

    /// `value`, or what its local `$ref` (`#/…`) points at.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        value["$ref"]
            .as_str()
            .and_then(|reference| reference.strip_prefix('#'))
            .and_then(|pointer| self.root.pointer(pointer))
            .unwrap_or(value)
    }

    /// A complaint unless some operation does `action` on `channel`.
    fn missing_operation(&self, channel: &Channel<'_>, action: &str, who: &str) -> Option<String> {
        let target = format!("#/channels/{}", channel.id);
        let found = self.root["operations"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, operation)| {
                operation["action"] == action && operation["channel"]["$ref"] == target.as_str()
            });
        (!found).then(|| {
            format!(
                "channel `{}`: no `{action}` operation on it ({who})",
                channel.address
            )
        })
    }

    /// A complaint unless `channel` lists the message of `event`.
    fn missing_message(&self, channel: &Channel<'_>, event: EventType) -> Option<String> {
        let found = channel.value["messages"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, message)| self.resolve(message)["name"] == event.name);
        (!found).then(|| {
            format!(
                "channel `{}`: does not carry the message `{}`",
                channel.address, event.name
            )
        })
    }
}

// ---------------------------------------------------------------- the CLI

/// The `asyncapi` command of an installed CLI.
struct AsyncapiCli {
    /// The install directory (`--prefix` of `npm install`).
    dir: PathBuf,
}

impl AsyncapiCli {
    fn executable(&self) -> PathBuf {
        self.dir.join("node_modules").join(".bin").join("asyncapi")
    }

    /// The CLI, with its usage metrics off: it would otherwise write a config file into
    /// the home directory and try to send every command to a metrics service.
    fn command(&self) -> Command {
        let metrics_config = self.dir.join("analytics.json");
        std::fs::write(
            &metrics_config,
            r#"{"analyticsEnabled":"false","infoMessageShown":"true","userID":"system-tests"}"#,
        )
        .expect("the CLI's directory is writable");
        let mut command = Command::new(self.executable());
        command
            .env("ASYNCAPI_METRICS_CONFIG_PATH", metrics_config)
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0");
        command
    }

    /// True when the installed CLI runs and is the pinned version.
    fn is_installed(&self) -> bool {
        self.executable().exists()
            && self
                .command()
                .arg("--version")
                .output()
                .is_ok_and(|output| {
                    output.status.success()
                        && text(&output).contains(&format!("@asyncapi/cli/{ASYNCAPI_CLI}"))
                })
    }
}

/// The pinned CLI, installed first into `CARGO_TARGET_TMPDIR/asyncapi-cli-<version>` if it
/// is not there (or not whole). Install scripts are not run: the CLI's own would add
/// shell completion to `~/.bashrc`, and one of its dependencies reports the install to
/// an analytics service; `validate` needs none of them.
fn asyncapi_cli() -> AsyncapiCli {
    // Without Node.js an installed CLI cannot run either: say so before judging the
    // install broken and removing it.
    let node = run(Command::new("node").arg("--version"));
    assert!(
        node.status.success(),
        "node --version failed:\n{}",
        text(&node)
    );
    let cli = AsyncapiCli {
        dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("asyncapi-cli-{ASYNCAPI_CLI}")),
    };
    if cli.is_installed() {
        return cli;
    }
    let _ = std::fs::remove_dir_all(&cli.dir);
    std::fs::create_dir_all(&cli.dir).expect("the target directory is writable");
    let output = run(Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(&cli.dir)
        .args([
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .arg(format!("@asyncapi/cli@{ASYNCAPI_CLI}")));
    assert!(
        output.status.success(),
        "npm install @asyncapi/cli@{ASYNCAPI_CLI} failed:\n{}",
        text(&output)
    );
    assert!(
        cli.is_installed(),
        "@asyncapi/cli@{ASYNCAPI_CLI} was installed into {} but does not run",
        cli.dir.display()
    );
    cli
}

/// Runs `command` to completion; a program that cannot be started (no Node.js or npm on
/// `PATH`) fails the test and says what is needed.
fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|error| {
        panic!(
            "cannot run {:?}: {error}. This test needs Node.js (20 or later) and npm on PATH, \
             and the npm registry on its first run",
            command.get_program()
        )
    })
}

/// A command's stdout and stderr, as text.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
