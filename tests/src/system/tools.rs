//! The services' command-line tools (`dlq list`, `dlq redrive`, `replay`), run the way
//! an operator runs them: the service's binary with the service's configuration.

use std::{path::PathBuf, process::Output};

use serde_json::Value;

use crate::defaults;

use super::options::Service;

/// A service's binary with its environment, for running its subcommands. The broker URL
/// is the direct one, not a proxy a test may have cut: the operator's tools are not the
/// subject of a fault test.
#[derive(Debug, Clone)]
pub struct Tool {
    /// Which service's binary.
    service: Service,
    /// Its path.
    binary: PathBuf,
    /// The service's environment with the direct broker URL.
    env: Vec<(String, String)>,
}

impl Tool {
    /// `service`'s binary at `binary`, run with `env` but straight to the broker.
    pub(super) fn new(service: Service, binary: PathBuf, env: &[(String, String)]) -> Self {
        let mut env: Vec<(String, String)> = env
            .iter()
            .filter(|(key, _)| key != "AMQP_URL")
            .cloned()
            .collect();
        env.push(("AMQP_URL".to_owned(), defaults::AMQP_URL.to_owned()));
        Self {
            service,
            binary,
            env,
        }
    }

    /// Runs `<service> <args…>` and returns its output, whatever its exit status.
    pub async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(&self.binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().cloned())
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .expect("the tool runs")
    }

    /// Runs `<service> <args…>`, fails the test with its output unless it exits 0, and
    /// returns what it printed, trimmed.
    pub async fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            output.status.success(),
            "{} {args:?} failed ({}):\n{stdout}\n{}",
            self.service.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `<service> dlq list`, parsed: one JSON object per dead-lettered message. Fails the
    /// test with the tool's output if it fails or prints something else.
    pub async fn dlq_list(&self) -> Vec<Value> {
        self.run_ok(&["dlq", "list"])
            .await
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
            })
            .collect()
    }

    /// `<service> dlq redrive --id …` (or `--all` when `ids` is empty); returns what it
    /// printed (`redriven N`), failing the test with its output if it fails.
    pub async fn dlq_redrive(&self, ids: &[String]) -> String {
        let mut args = vec!["dlq", "redrive"];
        if ids.is_empty() {
            args.push("--all");
        }
        for id in ids {
            args.extend(["--id", id.as_str()]);
        }
        self.run_ok(&args).await
    }
}
