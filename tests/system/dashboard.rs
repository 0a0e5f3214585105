use std::{collections::BTreeSet, path::PathBuf};

use reqwest::StatusCode;
use serde_json::Value;
use system_tests::{
    eventually::{PATIENCE, eventually},
    system::{Service, TestSystem},
};

/// A file of the repository (the deployment's dashboards and configuration), as text.
fn repository_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()))
}

/// Every PromQL `expr` in the dashboard.
fn expressions(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    _ => expressions(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| expressions(item, found)),
        _ => {}
    }
}

/// The metric names a PromQL expression selects: identifiers outside label matchers,
/// ranges and strings that are not functions, keywords or grouping labels.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 20] = [
        "by", "without", "on", "ignoring", "and", "or", "unless", "bool", "offset", "sum", "min",
        "max", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let (mut names, mut index, mut depth_braces, mut depth_brackets) = (BTreeSet::new(), 0, 0, 0);
    let mut grouping = false;
    while index < chars.len() {
        let c = chars[index];
        match c {
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => depth_brackets += 1,
            ']' => depth_brackets -= 1,
            ')' => grouping = false,
            '"' => {
                index += 1;
                while index < chars.len() && chars[index] != '"' {
                    index += 1;
                }
            }
            _ if (c.is_ascii_alphabetic() || c == '_')
                && depth_braces == 0
                && depth_brackets == 0 =>
            {
                let start = index;
                while index + 1 < chars.len()
                    && (chars[index + 1].is_ascii_alphanumeric()
                        || chars[index + 1] == '_'
                        || chars[index + 1] == ':')
                {
                    index += 1;
                }
                let word: String = chars[start..=index].iter().collect();
                let next = chars[index + 1..].iter().find(|c| !c.is_whitespace());
                if KEYWORDS.contains(&word.as_str()) {
                    grouping = matches!(word.as_str(), "by" | "without" | "on" | "ignoring");
                } else if next != Some(&'(') && !grouping {
                    names.insert(word);
                }
            }
            _ => {}
        }
        index += 1;
    }
    names
}

/// The scanner that finds the dashboard's metric names takes the metrics out of a
/// PromQL expression and leaves label values, functions and grouping labels alone.
#[test]
fn the_promql_scanner_finds_metrics_and_skips_labels_and_functions() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket{route="/users"}[1m]))) / max(outbox_backlog_events) or vector(0)"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "http_request_duration_seconds_bucket",
            "outbox_backlog_events"
        ]
    );
}

/// The alert rules: each has a runbook line, and the README's "Operating" section names
/// each alert. Returns their expressions.
fn alert_expressions() -> Vec<String> {
    let rules: Value = serde_norway::from_str(&repository_file("deploy/prometheus/alerts.yml"))
        .expect("the alert rules are YAML");
    let readme = repository_file("README.md");
    let mut exprs = Vec::new();
    for rule in rules["groups"][0]["rules"]
        .as_array()
        .expect("a list of rules")
    {
        let alert = rule["alert"].as_str().expect("an alert name");
        assert!(
            rule["annotations"]["runbook"]
                .as_str()
                .is_some_and(|r| r.len() > 40),
            "{alert} has a runbook line"
        );
        assert!(
            readme.contains(alert),
            "the README's Operating section names {alert}"
        );
        exprs.push(rule["expr"].as_str().expect("an expression").to_owned());
    }
    assert!(exprs.len() >= 5, "the alerts are there: {exprs:?}");
    exprs
}

/// The provisioned dashboard and the alert rules only use metrics the services really
/// export (checked against their `/metrics` after a sign-up and a rejected request; `up`
/// is Prometheus' own), and Prometheus is told to scrape all three services and load the
/// rules.
#[tokio::test(flavor = "multi_thread")]
async fn every_metric_on_the_dashboard_and_in_the_alerts_is_exported_by_a_service() {
    let dashboard: Value =
        serde_json::from_str(&repository_file("deploy/grafana/dashboards/signup.json"))
            .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "signup");
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has its panels: {exprs:?}");
    exprs.extend(alert_expressions());
    let charted: BTreeSet<String> = exprs
        .iter()
        .flat_map(|expr| metric_names(expr))
        .filter(|name| name != "up")
        .collect();

    let system = TestSystem::start().await;
    system
        .sign_up_and_wait("grafana@example.org", "Grafana")
        .await;
    assert_eq!(
        system
            .registration()
            .sign_up("not-an-email", "x")
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Some series appear only once their first event is counted, just after the effect
    // waited for above: scrape until every charted metric has been seen.
    let mut exported = BTreeSet::new();
    eventually(
        "every charted metric on some service's /metrics",
        PATIENCE,
        async || {
            for service in Service::ALL {
                let text = system.ops(service).metrics().await;
                exported.extend(
                    text.lines()
                        .filter(|line| !line.starts_with('#') && !line.is_empty())
                        .filter_map(|line| line.split(['{', ' ']).next().map(str::to_owned)),
                );
            }
            let missing: BTreeSet<&String> = charted.difference(&exported).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "charted but not exported: {missing:?}\nexported: {exported:?}"
                ))
            }
        },
    )
    .await;

    let prometheus: serde_json::Value =
        serde_norway::from_str(&repository_file("deploy/prometheus/prometheus.yml"))
            .expect("prometheus.yml is YAML");
    let scraped: BTreeSet<(String, u64)> = prometheus["scrape_configs"][0]["dns_sd_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|config| {
            (
                config["names"][0].as_str().unwrap_or_default().to_owned(),
                config["port"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let services = [
        registration::config::IDENTITY,
        email::SERVICE.identity,
        profile::SERVICE.identity,
    ];
    let expected: BTreeSet<(String, u64)> = services
        .iter()
        .map(|identity| (identity.name.to_owned(), u64::from(identity.default_port)))
        .collect();
    assert_eq!(
        scraped, expected,
        "Prometheus discovers every instance of each service by DNS, on its port"
    );
    assert_eq!(
        prometheus["rule_files"][0], "/etc/prometheus/alerts.yml",
        "Prometheus loads the alert rules"
    );
    let datasources = repository_file("deploy/grafana/provisioning/datasources/datasources.yml");
    assert!(
        datasources.contains("uid: prometheus") && datasources.contains("uid: jaeger"),
        "{datasources}"
    );
}
