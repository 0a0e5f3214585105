//! `deploy/k8s/`, against the code: every environment variable its ConfigMaps give a
//! service is one that service reads (from its clap definition, as for compose), so a
//! renamed variable fails here and not in a cluster. Rendering and schema validation are
//! `deploy/k8s/validate.sh`'s (run by `.ci/run`).

use serde::Deserialize as _;
use serde_norway::Value;

use crate::{
    catalog::workspace_root,
    compose::{services, text},
};

/// The base ConfigMaps by name.
fn config_maps() -> Vec<(String, Value)> {
    let path = workspace_root().join("deploy/k8s/base/config.yaml");
    let text_of_file = std::fs::read_to_string(&path).expect("deploy/k8s/base/config.yaml");
    serde_norway::Deserializer::from_str(&text_of_file)
        .map(|document| {
            let value = Value::deserialize(document).expect("a YAML document");
            (text(&value["metadata"]["name"]).to_owned(), value)
        })
        .collect()
}

/// Each service's own ConfigMap and the shared one hold only variables it reads (or the
/// OpenTelemetry SDK's), and its own names its broker, its database and its key files.
#[test]
fn every_variable_the_config_maps_give_is_read() {
    let maps = config_maps();
    let data = |name: &str| -> Vec<(String, String)> {
        let (_, map) = maps
            .iter()
            .find(|(found, _)| found == name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"));
        map["data"]
            .as_mapping()
            .expect("data")
            .iter()
            .map(|(k, v)| (text(k).to_owned(), text(v).to_owned()))
            .collect()
    };
    for (service, reads) in services() {
        let given = data("signup-common").into_iter().chain(data(service));
        for (variable, _) in given {
            assert!(
                reads.contains(&variable) || variable.starts_with("OTEL_"),
                "{service} is given {variable}, which it does not read"
            );
        }
        for variable in [
            "AMQP_URL",
            "DATABASE_URL",
            "PII_KEYS_FILE",
            "PII_LOOKUP_KEY_FILE",
        ] {
            assert!(
                data(service).iter().any(|(name, _)| name == variable),
                "{service}: no {variable}"
            );
        }
    }
}
