//! `docker-compose.yml`, checked without a Docker engine (there is none where CI runs):
//! parsed as YAML with its merge keys applied, and compared with what the code reads and
//! with the other deploy files it names.
//!
//! What only an engine can show (that the images build and the stack comes up) is not
//! checked here; the README says so.

use std::collections::BTreeSet;

use clap::CommandFactory;
use serde_norway::Value;

use crate::{broker_definitions::password_hash, catalog::workspace_root};

/// The stack, merge keys (`<<: *service-env`) applied.
pub(crate) fn compose() -> Value {
    let path = workspace_root().join("docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("docker-compose.yml");
    let mut value: Value = serde_norway::from_str(&text).expect("docker-compose.yml is YAML");
    value.apply_merge().expect("the merge keys resolve");
    value
}

/// Each service of the workspace: its compose name and every environment variable its
/// configuration reads (from its clap definition, so a renamed variable fails here).
pub(crate) fn services() -> Vec<(&'static str, BTreeSet<String>)> {
    let variables = |command: clap::Command| -> BTreeSet<String> {
        command
            .get_arguments()
            .filter_map(|argument| argument.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect()
    };
    vec![
        (
            "registration",
            variables(registration::config::Config::command()),
        ),
        ("email", variables(email::Config::command())),
        ("profile", variables(profile::Config::command())),
    ]
}

pub(crate) fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Every published port is bound to 127.0.0.1; the services publish none, so
/// `docker compose up --scale email=2` has no port to clash on: the gateway publishes
/// 8080–8082 and forwards each to its service by name (all its instances).
#[test]
fn every_port_is_local_and_the_services_can_scale_behind_the_gateway() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    for (name, service) in services {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            assert!(
                text(port).starts_with("127.0.0.1:"),
                "{}: port {port:?} is published beyond this machine",
                text(name)
            );
        }
    }
    let gateway = std::fs::read_to_string(workspace_root().join("deploy/gateway/nginx.conf"))
        .expect("nginx.conf");
    let published: Vec<&str> = compose["services"]["gateway"]["ports"]
        .as_sequence()
        .expect("the gateway publishes ports")
        .iter()
        .map(text)
        .collect();
    let identities = [
        registration::config::IDENTITY,
        email::SERVICE.identity,
        profile::SERVICE.identity,
    ];
    for identity in identities {
        let (name, port) = (identity.name, identity.default_port);
        assert!(
            compose["services"][name]["ports"].is_null(),
            "{name} publishes a port of its own, so a second instance would clash"
        );
        assert!(
            published.contains(&format!("127.0.0.1:{port}:{port}").as_str()),
            "the gateway does not publish {port} for {name}"
        );
        assert!(
            gateway.contains(&format!("listen {port};"))
                && gateway.contains(&format!("{name}:{port};")),
            "deploy/gateway/nginx.conf does not forward {port} to {name}:{port}"
        );
    }
}

/// Every variable a service is given is one it reads (or the OpenTelemetry SDK reads), and
/// every `…_FILE` variable names a secret mounted into that service, defined at the top
/// level, from a file that exists.
#[test]
fn every_variable_is_read_and_every_password_file_is_a_mounted_secret() {
    let compose = compose();
    let defined_secrets = compose["secrets"].as_mapping().expect("top-level secrets");
    for (name, reads) in services() {
        let service = &compose["services"][name];
        let environment = service["environment"].as_mapping().expect("environment");
        let mounted: BTreeSet<&str> = service["secrets"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        for (variable, value) in environment {
            let variable = text(variable);
            assert!(
                reads.contains(variable) || variable.starts_with("OTEL_"),
                "{name} is given {variable}, which it does not read (it reads {reads:?})"
            );
            if let Some(secret) = variable
                .ends_with("_FILE")
                .then(|| text(value).strip_prefix("/run/secrets/"))
                .flatten()
            {
                assert!(
                    mounted.contains(secret),
                    "{name}: secret {secret} is not mounted"
                );
                let file = text(&defined_secrets[secret]["file"]);
                assert!(
                    workspace_root().join(file).is_file(),
                    "secret {secret}: no file {file}"
                );
            } else {
                assert!(
                    !variable.ends_with("_FILE"),
                    "{name}: {variable} is not under /run/secrets"
                );
            }
        }
    }
}

/// The broker user in each service's `AMQP_URL` is in the definitions RabbitMQ loads, and
/// its password secret is the password those definitions hash; the database user is the
/// service's own role, which `deploy/postgres/init.sh` creates.
#[test]
fn each_service_logs_in_as_the_user_the_definitions_and_the_init_script_create() {
    let compose = compose();
    let definitions: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("deploy/rabbitmq/definitions.json"))
            .expect("definitions"),
    )
    .expect("JSON");
    let init =
        std::fs::read_to_string(workspace_root().join("deploy/postgres/init.sh")).expect("init.sh");
    let volumes: Vec<&str> = compose["services"]["rabbitmq"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(text)
        .collect();
    assert!(
        volumes.contains(&"./deploy/rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro")
    );
    for (name, _) in services() {
        let environment = &compose["services"][name]["environment"];
        let amqp = url::Url::parse(text(&environment["AMQP_URL"])).expect("AMQP_URL");
        assert_eq!(
            amqp.username(),
            name,
            "{name} logs in to RabbitMQ as itself"
        );
        assert_eq!(
            amqp.password(),
            None,
            "{name}: the password belongs in the secret"
        );
        let secret = text(&environment["AMQP_PASSWORD_FILE"])
            .strip_prefix("/run/secrets/")
            .expect("a secret");
        let file = text(&compose["secrets"][secret]["file"]);
        let password = std::fs::read_to_string(workspace_root().join(file))
            .unwrap_or_else(|error| panic!("secret {secret} ({file:?}): {error}"));
        let user = definitions["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|user| user["name"] == name)
            .unwrap_or_else(|| panic!("no broker user {name} in the definitions"));
        assert_eq!(
            user["password_hash"],
            password_hash(name, password.trim_end_matches(['\r', '\n'])),
            "{name}: the definitions' hash is not the secret's password; regenerate them"
        );
        let database = url::Url::parse(text(&environment["DATABASE_URL"])).expect("DATABASE_URL");
        assert_eq!(
            database.username(),
            name,
            "{name} logs in to PostgreSQL as itself"
        );
        assert_eq!(database.path(), format!("/{name}"));
        assert!(
            init.contains(name),
            "deploy/postgres/init.sh creates no role {name}"
        );
    }
}
