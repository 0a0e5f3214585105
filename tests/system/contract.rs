//! The HTTP contract, checked by its official tool: schemathesis (from PyPI) generates
//! requests from each service's `/openapi.json` (valid ones, invalid ones, and sequences
//! that follow the document's links) and checks every answer against the document: no
//! 5xx, every status, header, content type and body as documented, every schema-valid
//! request accepted. The exceptions are in `tests/contract/schemathesis.toml`, each with
//! its reason.
//!
//! Quick in the default run (`CONTRACT_EXAMPLES`, default 25 per operation and phase);
//! `CONTRACT_EXAMPLES=500 cargo test -p system-tests --test system contract` is the
//! longer one. Schemathesis is installed on first use into a virtualenv under the target
//! directory, pinned to [`SCHEMATHESIS`].

use std::path::{Path, PathBuf};

use system_tests::system::{Service, TestSystem};
use tokio::process::Command;

/// The pinned schemathesis release.
const SCHEMATHESIS: &str = "4.32.5";

/// Where it is installed: one virtualenv per pinned version, kept between runs.
fn virtualenv() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-{SCHEMATHESIS}"))
}

/// The `schemathesis` command, installed first if it is not there (or not whole).
async fn schemathesis() -> PathBuf {
    let venv = virtualenv();
    let command = venv.join("bin").join("schemathesis");
    let works = |command: PathBuf| async move {
        Command::new(command)
            .arg("--version")
            .output()
            .await
            .is_ok_and(|output| output.status.success())
    };
    if works(command.clone()).await {
        return command;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let run = |program: PathBuf, args: Vec<String>| async move {
        let output = Command::new(&program)
            .args(&args)
            .output()
            .await
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed:\n{}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(
        "python3".into(),
        vec!["-m".into(), "venv".into(), venv.display().to_string()],
    )
    .await;
    run(
        venv.join("bin").join("pip"),
        vec![
            "install".into(),
            "--quiet".into(),
            format!("schemathesis=={SCHEMATHESIS}"),
        ],
    )
    .await;
    assert!(works(command.clone()).await, "schemathesis installed");
    command
}

/// Every service's answers, to whatever schemathesis sends, match its document.
#[tokio::test(flavor = "multi_thread")]
async fn every_service_keeps_its_openapi_contract() {
    let command = schemathesis().await;
    let examples = std::env::var("CONTRACT_EXAMPLES").unwrap_or_else(|_| "25".to_owned());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("contract/schemathesis.toml");
    let system = TestSystem::start().await;

    let mut failures = Vec::new();
    for service in Service::ALL {
        let output = Command::new(&command)
            .arg("--config-file")
            .arg(&config)
            .args(["run", "--checks", "all", "--max-examples", &examples])
            .arg(system.ops(service).url("/openapi.json"))
            .env("NO_COLOR", "1")
            .output()
            .await
            .expect("schemathesis runs");
        let report = String::from_utf8_lossy(&output.stdout).into_owned();
        println!("== schemathesis, {service:?} ==\n{report}");
        if !output.status.success() {
            failures.push(format!(
                "{service:?}:\n{report}{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "schemathesis found:\n{}",
        failures.join("\n")
    );
}
