//! The workspace's dependency rules, checked from `cargo metadata` (offline, no build).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// Crates that `events` must not pull in, directly or through another crate: it is the
/// schema every service and tool shares, and must stay free of a runtime, a broker
/// client, a database driver and an HTTP client.
const FORBIDDEN_IN_EVENTS: [&str; 4] = ["tokio", "lapin", "sqlx", "reqwest"];

/// The services cooperate only through events, so no service crate depends on another
/// (that would let one call the other's code or read its tables), and no shared crate
/// depends on a service (that would make every service depend on it). `events` is a
/// pure schema crate: neither it nor anything it depends on (for the host platform)
/// brings in tokio, lapin, sqlx or reqwest.
#[test]
fn no_service_depends_on_another_and_events_pulls_in_no_io_crate() {
    let metadata = cargo_metadata(&["--no-deps"]).unwrap_or_else(|error| panic!("{error}"));
    let root = PathBuf::from(
        metadata["workspace_root"]
            .as_str()
            .expect("a workspace root"),
    );
    let members = members(&metadata, &root);
    let mut violations = Vec::new();

    for package in packages(&metadata) {
        let name = package["name"].as_str().expect("a package name");
        let area = members.get(name).map_or("", String::as_str);
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let Some(path) = dependency["path"].as_str() else {
                continue;
            };
            let on = dependency["name"].as_str().expect("a dependency name");
            if area_of(&root, Path::new(path)) != "services" {
                continue;
            }
            match area {
                "services" => violations.push(format!("service {name} depends on service {on}")),
                "shared" => violations.push(format!("shared crate {name} depends on service {on}")),
                _ => {}
            }
        }
        if name == "events" {
            for dependency in package["dependencies"].as_array().into_iter().flatten() {
                let on = dependency["name"].as_str().expect("a dependency name");
                if dependency["kind"].is_null() && FORBIDDEN_IN_EVENTS.contains(&on) {
                    violations.push(format!("events depends on {on}"));
                }
            }
        }
    }
    violations.extend(forbidden_beneath_events());

    assert!(
        violations.is_empty(),
        "the workspace's dependency rules are broken:\n  {}",
        violations.join("\n  ")
    );
}

/// The forbidden crates among `events`' normal dependencies, however deep, each with
/// the chain that brings it in. Needs every dependency's manifest on disk (`--offline`
/// resolves from the local registry cache); if cargo cannot resolve without the
/// network, says so on stderr and checks nothing beyond the declared dependencies.
fn forbidden_beneath_events() -> Vec<String> {
    let host = match host_triple() {
        Ok(host) => host,
        Err(error) => {
            eprintln!("not checking events' transitive dependencies: {error}");
            return Vec::new();
        }
    };
    let metadata = match cargo_metadata(&["--filter-platform", &host]) {
        Ok(metadata) => metadata,
        Err(error) => {
            eprintln!("not checking events' transitive dependencies: {error}");
            return Vec::new();
        }
    };
    let names: BTreeMap<&str, &str> = packages(&metadata)
        .map(|package| {
            (
                package["id"].as_str().expect("a package id"),
                package["name"].as_str().expect("a package name"),
            )
        })
        .collect();
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("the resolve graph")
        .iter()
        .map(|node| (node["id"].as_str().expect("a node id"), node))
        .collect();
    let events = packages(&metadata)
        .find(|package| package["name"] == "events" && package["source"].is_null())
        .and_then(|package| package["id"].as_str())
        .expect("the workspace has an events crate");

    // Breadth first along normal (not dev, not build) edges, remembering who brought
    // each crate in.
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut seen = BTreeSet::from([events]);
    let mut queue = vec![events];
    while let Some(id) = queue.pop() {
        for dependency in nodes[id]["deps"].as_array().into_iter().flatten() {
            let normal = dependency["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kind| kind["kind"].is_null());
            let on = dependency["pkg"].as_str().expect("a package id");
            if normal && seen.insert(on) {
                parent.insert(on, id);
                queue.push(on);
            }
        }
    }
    seen.into_iter()
        .filter(|id| FORBIDDEN_IN_EVENTS.contains(&names[id]))
        .map(|id| {
            let mut chain = vec![names[id]];
            let mut at = id;
            while let Some(up) = parent.get(at) {
                chain.push(names[up]);
                at = up;
            }
            chain.reverse();
            format!("events pulls in {}: {}", names[id], chain.join(" → "))
        })
        .collect()
}

/// `cargo metadata --format-version 1 --offline <extra…>` on the workspace, parsed.
fn cargo_metadata(extra: &[&str]) -> Result<Value, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let output = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .args(extra)
        .output()
        .map_err(|error| format!("cargo metadata did not run: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata {extra:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|error| format!("cargo metadata: {error}"))
}

/// The platform cargo builds for by default, from `cargo -vV`: `cargo metadata` limited
/// to it resolves from what a build downloaded, without the network.
fn host_triple() -> Result<String, String> {
    let output = cargo()
        .arg("-vV")
        .output()
        .map_err(|error| format!("cargo -vV did not run: {error}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "cargo -vV names no host".to_owned())
}

/// The cargo that runs the tests (`CARGO`), or the one on `PATH`.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The workspace's own packages (with `--no-deps`, the only ones listed).
fn packages(metadata: &Value) -> impl Iterator<Item = &Value> {
    metadata["packages"].as_array().into_iter().flatten()
}

/// Each workspace member's area: the top directory it lives in (`services`, `shared`,
/// `tests`).
fn members(metadata: &Value, root: &Path) -> BTreeMap<String, String> {
    packages(metadata)
        .filter(|package| package["source"].is_null())
        .map(|package| {
            let manifest = Path::new(package["manifest_path"].as_str().expect("a manifest"));
            let directory = manifest.parent().expect("a manifest is in a directory");
            (
                package["name"].as_str().expect("a name").to_owned(),
                area_of(root, directory),
            )
        })
        .collect()
}

/// The first directory of `path` below the workspace root, e.g. `services`.
fn area_of(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .ok()
        .and_then(|relative| relative.components().next())
        .map(|first| first.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default()
}
