//! Publishing as maintainers do it and consuming as users do: `cargo xtask publish` puts every
//! publishable crate, in dependency order, into a local registry that the test starts
//! (`cargo-http-registry` from crates.io, installed by `cargo xtask test`, on 127.0.0.1), from a
//! clean clone of the workspace; then a project outside the workspace
//! (`tests/fixtures/consumer`) is built from that registry alone (third-party crates from
//! crates.io), and it joins a storage session with the published generated client and ingests the
//! 3 s sample clip into the published emulator.
//!
//! CI runs the short form (`--no-verify`: cargo does not build each crate while packaging it;
//! the consumer build compiles the libraries anyway). The long form, which also lets cargo
//! verify-build every packaged crate (several minutes more on two cores), runs with
//! `cargo xtask test -- -p xtask --test publish_registry -- --ignored`.
//!
//! Publishing to a registry other than crates.io needs `registry = "<name>"` on the workspace
//! dependencies between our crates (Cargo resolves a path dependency's published version from
//! crates.io otherwise); the clone gets those keys as a maintainer of a private registry would
//! commit them.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{copy_workspace, shared_target_dir, workspace_root, Run};

/// The registry's name in Cargo's configuration (set through environment variables).
const REGISTRY: &str = "kvs-local";

/// What `cargo xtask publish` must print, in this order.
const ORDER: [&str; 9] = [
    "1. kvs-iot-credentials 0.1.0",
    "2. kvs-media 0.1.0",
    "3. kvs-webrtc-turn 0.1.0",
    "4. kvs_sdk_kinesisvideowebrtcstorage 1.0.0",
    "5. kvs-emulator 0.1.0",
    "6. kvs-webrtc-discovery 0.1.0",
    "7. kvs-webrtc-signaling 0.1.0",
    "8. kvs-webrtc-ingest 0.1.0",
    "9. kvs-ingest 0.1.0",
];

/// `cargo-http-registry`: `$KVS_CARGO_HTTP_REGISTRY` (set by `cargo xtask test`), else where
/// `cargo xtask test --provision-only` installs it.
fn registry_server() -> PathBuf {
    let path = std::env::var_os("KVS_CARGO_HTTP_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace_root().join("target/test-env/cargo-http-registry/bin/cargo-http-registry")
        });
    assert!(
        path.is_file(),
        "this test needs cargo-http-registry: {} does not exist; run `cargo xtask test \
         --provision-only` (it installs it) or set KVS_CARGO_HTTP_REGISTRY",
        path.display()
    );
    path
}

/// A `cargo-http-registry` process serving a registry in a temporary directory on 127.0.0.1;
/// killed when dropped.
struct LocalRegistry {
    child: Child,
    root: tempfile::TempDir,
}

impl LocalRegistry {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let child = Command::new(registry_server())
            .arg(root.path().join("registry"))
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("cargo-http-registry starts");
        let registry = Self { child, root };
        // It binds its port, then writes the address into the index's config.json and commits
        // it: the registry is ready once that file names an API address.
        let config = registry.index().join("config.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let api = std::fs::read_to_string(&config)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|json| json["api"].as_str().map(str::to_string));
            if api.is_some_and(|api| api.starts_with("http://127.0.0.1:")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cargo-http-registry wrote no API address into {} within 30 s",
                config.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// The index (a git repository) and the crates.
    fn index(&self) -> PathBuf {
        self.root.path().join("registry")
    }

    /// Environment that defines the registry for cargo.
    fn env(&self) -> Vec<(String, String)> {
        let key = REGISTRY.to_uppercase().replace('-', "_");
        vec![
            (
                format!("CARGO_REGISTRIES_{key}_INDEX"),
                format!("file://{}", self.index().display()),
            ),
            // It checks no token, but cargo sends one.
            (
                format!("CARGO_REGISTRIES_{key}_TOKEN"),
                "unused".to_string(),
            ),
        ]
    }

    /// The index entry (one JSON line per version) of `name`.
    fn entry(&self, name: &str) -> Vec<serde_json::Value> {
        let lower = name.to_lowercase();
        let dir = match lower.len() {
            1 => "1".to_string(),
            2 => "2".to_string(),
            3 => format!("3/{}", &lower[..1]),
            _ => format!("{}/{}", &lower[..2], &lower[2..4]),
        };
        let path = self.index().join(dir).join(&lower);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("no index entry {}: {err}", path.display()))
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A clean clone of the workspace (its files as they are now, committed in a fresh repository),
/// with the workspace dependencies between our crates pointed at the local registry.
fn clean_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_workspace(dir.path());
    let manifest_path = dir.path().join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let mut pointed = 0;
    let lines: Vec<String> = manifest
        .lines()
        .map(|line| {
            let ours = ["kvs-", "aws-sdk-kinesisvideowebrtcstorage ="]
                .iter()
                .any(|prefix| line.starts_with(prefix))
                && line.contains("path = ");
            if ours {
                pointed += 1;
                line.replacen(" }", &format!(", registry = \"{REGISTRY}\" }}"), 1)
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_eq!(
        pointed,
        ORDER.len() - 1,
        "the workspace dependencies between our crates (every published crate but kvs-ingest, the binary)"
    );
    std::fs::write(&manifest_path, lines.join("\n") + "\n").unwrap();
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "clean checkout"]);
    dir
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// `cargo xtask publish ARGS` in `checkout`, with the registry defined.
fn publish(checkout: &Path, registry: &LocalRegistry, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .arg("publish")
        .args(args)
        .current_dir(checkout)
        .env("KVS_XTASK_PROJECT_ROOT", checkout)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .envs(registry.env());
    let run = Run::from(command.output().unwrap());
    eprintln!(
        "--- cargo xtask publish {args:?}\n{}{}",
        run.stdout, run.stderr
    );
    run
}

fn publish_and_consume(verify: bool) {
    let registry = LocalRegistry::start();
    let checkout = clean_checkout();
    let mut args = vec!["--registry", REGISTRY];
    if !verify {
        args.push("--no-verify");
    }

    // A dirty tree is refused before anything is uploaded.
    std::fs::write(checkout.path().join("notes.txt"), "not committed").unwrap();
    publish(checkout.path(), &registry, &args)
        .expect_failure(1, &["the tree has uncommitted changes", "notes.txt"]);
    std::fs::remove_file(checkout.path().join("notes.txt")).unwrap();

    let run = publish(checkout.path(), &registry, &args);
    run.expect_success();
    let mut at = 0;
    for line in ORDER {
        let found = run.stdout[at..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order:\n{}", run.stdout));
        at += found + line.len();
    }
    assert!(
        run.stdout.contains(&format!(
            "publish: done; {} published, 0 already there",
            ORDER.len()
        )),
        "{}",
        run.stdout
    );

    // The registry has every crate; the published discovery crate names our generated client
    // (in this registry), not crates.io's aws-sdk-kinesisvideowebrtcstorage.
    for line in ORDER {
        let mut words = line.split_whitespace().skip(1);
        let (name, version) = (words.next().unwrap(), words.next().unwrap());
        let versions = registry.entry(name);
        assert!(
            versions.iter().any(|v| v["vers"] == version),
            "{name} {version} not in the index: {versions:?}"
        );
    }
    let discovery = &registry.entry("kvs-webrtc-discovery")[0];
    let storage = discovery["deps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "aws-sdk-kinesisvideowebrtcstorage")
        .unwrap_or_else(|| panic!("no storage client dependency: {discovery}"));
    assert_eq!(storage["package"], "kvs_sdk_kinesisvideowebrtcstorage");
    assert!(storage["registry"].is_null(), "same registry: {storage}");
    assert_eq!(storage["req"], "^1.0.0");

    // Publishing the same versions again is refused (a changed crate needs a new version);
    // --skip-existing finishes an interrupted run.
    publish(checkout.path(), &registry, &args).expect_failure(
        1,
        &[&format!(
            "{} is already in kvs-local",
            ORDER[0].split_once(". ").unwrap().1
        )],
    );
    let mut skipping = args.clone();
    skipping.push("--skip-existing");
    let run = publish(checkout.path(), &registry, &skipping);
    run.expect_success();
    assert!(
        run.stdout.contains(&format!(
            "publish: done; 0 published, {} already there",
            ORDER.len()
        )),
        "{}",
        run.stdout
    );

    // A project outside the workspace, from the registry only.
    let consumer = tempfile::tempdir().unwrap();
    let fixture = workspace_root().join("xtask/tests/fixtures/consumer");
    let manifest = std::fs::read_to_string(fixture.join("Cargo.toml.template"))
        .unwrap()
        .replace("REGISTRY", REGISTRY);
    std::fs::write(consumer.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir_all(consumer.path().join("src")).unwrap();
    std::fs::copy(
        fixture.join("src/main.rs"),
        consumer.path().join("src/main.rs"),
    )
    .unwrap();
    // The workspace's lock pins the third-party crates to the versions the workspace tests.
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        consumer.path().join("Cargo.lock"),
    )
    .unwrap();
    let target = shared_target_dir();
    let build = Command::new(env!("CARGO"))
        .current_dir(consumer.path())
        .args(["build", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .envs(registry.env())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "the consumer does not build from the registry:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let lock = std::fs::read_to_string(consumer.path().join("Cargo.lock")).unwrap();
    let index_source = format!("registry+file://{}", registry.index().display());
    for line in ORDER {
        let name = line.split_whitespace().nth(1).unwrap();
        // The CLI and its IoT credentials crate are not in a library user's graph.
        if ["kvs-ingest", "kvs-iot-credentials"].contains(&name) {
            continue;
        }
        let entry = format!("name = \"{name}\"\nversion");
        let at = lock
            .find(&entry)
            .unwrap_or_else(|| panic!("{name} is not in the consumer's lock:\n{lock}"));
        let source = lock[at..].lines().nth(2).unwrap_or_default();
        assert_eq!(
            source,
            format!("source = \"{index_source}\""),
            "{name} must come from the local registry"
        );
    }
    assert!(
        !lock.contains("name = \"aws-sdk-kinesisvideowebrtcstorage\""),
        "AWS's crate must not be in the consumer's graph:\n{lock}"
    );

    let output = Command::new(target.join("debug/kvs-consumer"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the consumer failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("--- consumer\n{stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["joinStorageSession"], "ok");
    // The clip is 3 s: 75 H.264 frames at 25 fps; every frame sent arrived.
    assert_eq!(report["videoFramesSent"], 75, "{report}");
    assert_eq!(report["videoFramesReceived"], 75, "{report}");
    assert!(
        report["audioFramesSent"].as_u64().unwrap() >= 150,
        "{report}"
    );
    assert_eq!(
        report["audioFramesReceived"], report["audioFramesSent"],
        "{report}"
    );
    assert_eq!(report["videoCodec"], "H264");
}

#[test]
fn every_crate_is_published_in_order_and_a_project_builds_from_the_registry_alone() {
    publish_and_consume(false);
}

/// The long form: cargo also builds every packaged crate before uploading it.
#[test]
#[ignore = "several minutes on two cores; run with -- --ignored (see the module docs)"]
fn every_crate_is_published_verified_and_a_project_builds_from_the_registry_alone() {
    publish_and_consume(true);
}
