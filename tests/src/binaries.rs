use std::path::{Path, PathBuf};

use tokio::sync::OnceCell;

/// The three service binaries, built once per test process.
static BUILT: OnceCell<PathBuf> = OnceCell::const_new();

/// The directory holding up-to-date `registration`, `email` and `profile` binaries.
///
/// `cargo test` builds a package's binaries only for that package's own tests, so the
/// harness asks cargo to build them (a no-op when they are current). It uses the same
/// cargo, target directory and profile as the test run itself, so nothing is built twice.
pub async fn directory() -> PathBuf {
    BUILT.get_or_init(build).await.clone()
}

async fn build() -> PathBuf {
    // target/<profile>/deps/system-<hash> → target/<profile>
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps")
        .to_path_buf();
    cargo_build(&profile_dir, SERVICES).await;
    profile_dir
}

/// The three services' binaries, built as a user builds them (on their own, so features
/// are unified among the services only).
const SERVICES: &[&str] = &[
    "--bins",
    "-p",
    "registration",
    "-p",
    "email",
    "-p",
    "profile",
];

/// For the benchmark: the directory of the running tool (`target/release` for
/// `cargo run --release --bin bench`), where the three services and the `smtp-sink` and
/// `otlp-sink` tools are built first, in the same profile.
pub async fn tools_directory() -> PathBuf {
    let exe = std::env::current_exe().expect("the tool knows its path");
    let profile_dir = exe
        .parent()
        .expect("tools live in target/<profile>")
        .to_path_buf();
    cargo_build(&profile_dir, SERVICES).await;
    let sinks = [
        "-p",
        "system-tests",
        "--bin",
        "smtp-sink",
        "--bin",
        "otlp-sink",
    ];
    cargo_build(&profile_dir, &sinks).await;
    profile_dir
}

/// Whether `profile_dir` holds release builds.
pub fn is_release(profile_dir: &Path) -> bool {
    profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
}

/// `cargo build <what>` in the profile of `profile_dir`; fails with cargo's output if the
/// build fails.
async fn cargo_build(profile_dir: &Path, what: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = tokio::process::Command::new(cargo);
    // cargo test sets CARGO_PKG_*, CARGO_MANIFEST_DIR and friends for the test process;
    // passed on, they change build-script fingerprints and make the nested build and the
    // next `cargo test` rebuild each other's dependencies.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && !["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&key.as_ref())
        {
            command.env_remove(key.as_ref());
        }
    }
    command
        .arg("build")
        .args(what)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if is_release(profile_dir) {
        command.arg("--release");
    }
    let output = command.output().await.expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build {what:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
