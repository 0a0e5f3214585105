//! `deploy/tls/compose.tls.yml`, the compose stack with TLS, checked without a Docker
//! engine: every service URL asks for TLS with the private CA and keeps its user, host and
//! database; every file the servers and clients are told to read is one the `tls-files`
//! step writes from what `deploy/tls/generate.sh` makes, with the mode the images need;
//! and the server certificate names the servers and chains to the CA.
//!
//! Not checked (no engine): that the images start with these files and settings.

use std::{collections::BTreeSet, os::unix::fs::PermissionsExt, path::Path, process::Command};

use serde_norway::Value;
use url::Url;

use crate::{
    catalog::workspace_root,
    compose::{compose, services, text},
};

/// The override file, merge keys applied.
fn override_file() -> Value {
    let path = workspace_root().join("deploy/tls/compose.tls.yml");
    let text = std::fs::read_to_string(&path).expect("deploy/tls/compose.tls.yml");
    let mut value: Value = serde_norway::from_str(&text).expect("the override is YAML");
    value.apply_merge().expect("the merge keys resolve");
    value
}

/// The query parameters of a URL, as `name=value` strings.
fn query(url: &Url) -> BTreeSet<String> {
    url.query_pairs().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Each service's broker, database and SMTP URLs ask for TLS and check the server with
/// the CA, and still name the user, host and database of the plain stack; every variable
/// is one the service reads, and the CA is mounted where the URLs say.
#[test]
fn every_service_url_asks_for_tls_with_the_private_ca() {
    let (plain, tls) = (compose(), override_file());
    for (name, reads) in services() {
        let environment = tls["services"][name]["environment"]
            .as_mapping()
            .expect("environment");
        for variable in environment.keys() {
            assert!(
                reads.contains(text(variable)),
                "{name}: {variable:?} is not read"
            );
        }
        let url = |source: &Value, variable: &str| -> Url {
            Url::parse(text(&source["services"][name]["environment"][variable]))
                .unwrap_or_else(|error| panic!("{name} {variable}: {error}"))
        };
        let (amqp, amqps) = (url(&plain, "AMQP_URL"), url(&tls, "AMQP_URL"));
        assert_eq!(amqps.scheme(), "amqps", "{name}");
        assert_eq!(amqps.port(), Some(5671), "{name}");
        assert_eq!(
            (amqps.username(), amqps.host_str(), amqps.path()),
            (amqp.username(), amqp.host_str(), amqp.path()),
            "{name}: the same user, broker and vhost"
        );
        assert!(
            query(&amqps).contains("cacertfile=/tls/ca.pem"),
            "{name}: {amqps}"
        );
        let (db, db_tls) = (url(&plain, "DATABASE_URL"), url(&tls, "DATABASE_URL"));
        assert_eq!(
            (db_tls.username(), db_tls.host_str(), db_tls.path()),
            (db.username(), db.host_str(), db.path()),
            "{name}: the same role, server and database"
        );
        let wanted: BTreeSet<String> = ["sslmode=verify-full", "sslrootcert=/tls/ca.pem"]
            .map(str::to_owned)
            .into();
        assert!(query(&db_tls).is_superset(&wanted), "{name}: {db_tls}");
        if name == "email" {
            let smtp = url(&tls, "SMTP_URL");
            let wanted: BTreeSet<String> = ["tls=required", "cacertfile=/tls/ca.pem"]
                .map(str::to_owned)
                .into();
            assert!(query(&smtp).is_superset(&wanted), "{smtp}");
        }
        let volumes: Vec<&str> = tls["services"][name]["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        assert!(
            volumes.contains(&"tls:/tls:ro"),
            "{name} mounts the CA: {volumes:?}"
        );
    }
}

/// Runs `generate.sh` and then the `tls-files` step's own script (its paths moved into a
/// temporary folder), and checks that every file the override and the RabbitMQ
/// configuration name exists with a mode its reader accepts, and that the server
/// certificate names every server and chains to the CA.
#[test]
fn the_tls_files_step_writes_every_file_the_servers_and_clients_read() {
    let root = workspace_root();
    let work = std::env::temp_dir().join(format!("compose-tls-{}", std::process::id()));
    let (input, output) = (work.join("in"), work.join("tls"));
    std::fs::create_dir_all(&output).expect("a temporary folder");
    let generated = Command::new("sh")
        .arg(root.join("deploy/tls/generate.sh"))
        .arg(&input)
        .status()
        .expect("generate.sh runs");
    assert!(generated.success(), "generate.sh: {generated}");

    let tls = override_file();
    let script = text(&tls["services"]["tls-files"]["command"][2])
        .replace("$$", "$")
        .replace("/in/", &format!("{}/", input.display()))
        .replace("/tls", &output.display().to_string());
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|id| id.stdout.starts_with(b"0\n"));
    // Without root the owners cannot be set; the modes are still checked.
    let script = if as_root {
        script
    } else {
        script
            .replace("-o 999 -g 999 ", "")
            .replace("-o 0 -g 0 ", "")
    };
    let ran = Command::new("sh")
        .args(["-euc", &script])
        .status()
        .expect("the step's script runs");
    assert!(ran.success(), "the tls-files script: {ran}");

    // Every /tls path the override and the RabbitMQ configuration name.
    let override_text =
        std::fs::read_to_string(root.join("deploy/tls/compose.tls.yml")).expect("override");
    let rabbitmq_conf =
        std::fs::read_to_string(root.join("deploy/tls/rabbitmq-tls.conf")).expect("conf");
    let named: BTreeSet<&str> = [override_text.as_str(), rabbitmq_conf.as_str()]
        .into_iter()
        .flat_map(|text| text.split(|c: char| c.is_whitespace() || c == '=' || c == '&'))
        .filter(|word| word.starts_with("/tls/") && word.contains('.') && !word.contains('$'))
        .collect();
    assert!(named.len() >= 7, "the named files: {named:?}");
    for path in &named {
        let file = output.join(path.trim_start_matches("/tls/"));
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|error| panic!("{path} is not written: {error}"))
            .permissions()
            .mode()
            & 0o777;
        let wanted = if path.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode, wanted, "{path}: mode {mode:o}");
    }
    if as_root {
        use std::os::unix::fs::MetadataExt;
        for server in ["rabbitmq", "postgres"] {
            let key = std::fs::metadata(output.join(server).join("server.key")).expect("key");
            assert_eq!((key.uid(), key.gid()), (999, 999), "{server}'s key");
        }
    }

    let certificate = output.join("rabbitmq/server.pem");
    let names = openssl(
        &["x509", "-noout", "-ext", "subjectAltName", "-in"],
        &certificate,
    );
    for server in ["rabbitmq", "postgres", "mailpit"] {
        assert!(
            names.contains(&format!("DNS:{server}")),
            "{server}: {names}"
        );
    }
    let verified = openssl(
        &[
            "verify",
            "-CAfile",
            &output.join("ca.pem").display().to_string(),
        ],
        &certificate,
    );
    assert!(verified.contains(": OK"), "{verified}");
    std::fs::remove_dir_all(&work).expect("the temporary folder is removed");
}

/// `openssl ARGS… FILE`'s output; fails the test if it fails.
fn openssl(args: &[&str], file: &Path) -> String {
    let output = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
