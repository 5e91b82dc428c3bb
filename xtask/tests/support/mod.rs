//! Helpers for running `cargo xtask regen` against scratch copies of the workspace.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

/// The committed generated crate, relative to the workspace root.
pub(crate) const GENERATED_CRATE: &str = "generated/kvs_sdk_kinesisvideowebrtcstorage";

/// The pinned smithy-rs source archive: `$KVS_SMITHY_RS_SOURCE`, else the copy in `../shared`
/// beside the workspace (where CI and the project's machines have it).
pub(crate) fn smithy_rs_source() -> PathBuf {
    let path = match std::env::var_os("KVS_SMITHY_RS_SOURCE") {
        Some(path) => PathBuf::from(path),
        None => workspace_root()
            .join("../shared/vendor/smithy-rs/smithy-rs-release-2026-08-21-codegen-src.tar.gz"),
    };
    assert!(
        path.exists(),
        "these tests need the pinned smithy-rs source archive (smithy-rs release-2026-08-21, \
         commit 56ee88c5): {} does not exist; set KVS_SMITHY_RS_SOURCE to a copy of it",
        path.display()
    );
    path
}

/// The real workspace root.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copies the whole workspace as a fresh clone would have it (tracked files and new files that
/// git does not ignore, as they are on disk) into `dest`; returns how many files.
pub(crate) fn copy_workspace(dest: &Path) -> usize {
    let root = workspace_root();
    let output = Command::new("git")
        .current_dir(&root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .expect("git is installed");
    assert!(output.status.success(), "git ls-files failed");
    let mut copied = 0;
    for name in output.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let relative = Path::new(std::str::from_utf8(name).expect("UTF-8 file names"));
        let from = root.join(relative);
        // A tracked file deleted in the work tree is not part of the copy.
        if from.is_file() {
            copy(&from, &dest.join(relative));
            copied += 1;
        }
    }
    copied
}

/// The workspace's target directory (the parent of `CARGO_TARGET_TMPDIR`): tests that build
/// copies of the workspace share its compiled third-party crates.
pub(crate) fn shared_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .to_path_buf()
}

/// A scratch copy of the parts of the workspace that `regen` reads and writes.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = workspace_root();
        for file in [
            "build.gradle",
            "generator-from-source.gradle",
            "settings.gradle",
            "gradle.properties",
            "smithy-build.json",
            "sdk-partitions.json",
        ] {
            copy(
                &root.join("codegen").join(file),
                &dir.path().join("codegen").join(file),
            );
        }
        for file in [
            "kinesis-video-webrtc-storage-2018-05-10.json",
            "model.lock.json",
        ] {
            copy(
                &root.join("model").join(file),
                &dir.path().join("model").join(file),
            );
        }
        copy(
            &root.join("generated/README.md"),
            &dir.path().join("generated/README.md"),
        );
        // The generator's defaults (AWS's crate name and version): the lock names no crate.
        let lock_path = dir.path().join("model/model.lock.json");
        let mut lock = xtask::lock::ModelLock::read(&lock_path).unwrap().unwrap();
        lock.krate = None;
        std::fs::write(&lock_path, lock.to_json()).unwrap();
        // The workspace's repository: regen writes it into a crate published under our name.
        let repository = std::fs::read_to_string(root.join("Cargo.toml"))
            .unwrap()
            .lines()
            .find(|line| line.starts_with("repository"))
            .expect("the workspace manifest names its repository")
            .to_string();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            format!(
                "[workspace]\nmembers = [\"generated/*\"]\nexclude = [\"generated/.staging\", \"codegen/build\"]\nresolver = \"2\"\n\n\
                 [workspace.package]\n{repository}\n\n\
                 [workspace.dependencies]\n\
                 aws-sdk-kinesisvideowebrtcstorage = {{ path = \"generated/aws-sdk-kinesisvideowebrtcstorage\", version = \"1.109.0\" }}\n"
            ),
        )
        .unwrap();
        Self { dir }
    }

    /// A scratch copy of the whole workspace ([`copy_workspace`]), for runs that build it.
    pub(crate) fn full() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_workspace(dir.path());
        Self { dir }
    }

    /// A scratch copy that also holds the committed generated crate and its stamp.
    pub(crate) fn with_generated() -> Self {
        let scratch = Self::new();
        let root = workspace_root();
        copy(
            &root.join("model/model.lock.json"),
            &scratch.path("model/model.lock.json"),
        );
        let lock = xtask::lock::ModelLock::read(&scratch.path("model/model.lock.json"))
            .unwrap()
            .unwrap();
        let krate = lock
            .krate
            .expect("the committed lock names the generated crate");
        let manifest = scratch.read("Cargo.toml");
        scratch.write(
            "Cargo.toml",
            &xtask::package::set_workspace_dependency(&manifest, &krate).unwrap(),
        );
        xtask::tree::Tree::read(&root.join(GENERATED_CRATE))
            .unwrap()
            .write(&scratch.path(GENERATED_CRATE))
            .unwrap();
        for file in ["generated/regen-stamp.json", "generated/rustfmt.toml"] {
            copy(&root.join(file), &scratch.path(file));
        }
        scratch
    }

    /// Asserts that model/ and generated/ are as in the workspace this copy was made from.
    pub(crate) fn assert_model_and_generated_untouched(&self) {
        let root = workspace_root();
        for dir in ["model", GENERATED_CRATE] {
            let ours = xtask::tree::Tree::read(&self.path(dir)).unwrap();
            let theirs = xtask::tree::Tree::read(&root.join(dir)).unwrap();
            assert!(ours == theirs, "{dir} changed");
        }
        assert!(!self.path("generated/.staging").exists());
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub(crate) fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative))
            .unwrap_or_else(|err| panic!("{relative}: {err}"))
    }

    pub(crate) fn write(&self, relative: &str, contents: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Runs `cargo xtask regen ARGS` here with extra environment.
    pub(crate) fn regen(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .arg("regen")
            .args(args)
            .env("KVS_XTASK_PROJECT_ROOT", self.root())
            // Tests must not leave Gradle daemons behind.
            .env("GRADLE_OPTS", "-Dorg.gradle.daemon=false")
            .env_remove("GRADLE");
        for (key, value) in env {
            command.env(key, value);
        }
        Run::from(command.output().unwrap())
    }
}

/// What a run printed and how it ended.
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code and that stderr contains every fragment.
    pub(crate) fn expect_failure(&self, code: i32, fragments: &[&str]) {
        assert_eq!(
            self.code,
            Some(code),
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        for fragment in fragments {
            assert!(
                self.stderr.contains(fragment),
                "stderr lacks {fragment:?}:\n{}",
                self.stderr
            );
        }
    }

    pub(crate) fn expect_success(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|err| panic!("copy {}: {err}", from.display()));
}

/// `group:artifact:version` → files, laid out as a Maven repository under `repo`.
pub(crate) fn publish(repo: &Path, group: &str, artifact: &str, version: &str, jar: &[u8]) {
    let dir = repo
        .join(group.replace('.', "/"))
        .join(artifact)
        .join(version);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{artifact}-{version}.jar")), jar).unwrap();
    std::fs::write(
        dir.join(format!("{artifact}-{version}.pom")),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\
             <modelVersion>4.0.0</modelVersion><groupId>{group}</groupId><artifactId>{artifact}</artifactId>\
             <version>{version}</version></project>\n"
        ),
    )
    .unwrap();
}

/// Writes `maven-metadata.xml` listing `versions` (the last is the release).
pub(crate) fn metadata(repo: &Path, group: &str, artifact: &str, versions: &[&str]) {
    let dir = repo.join(group.replace('.', "/")).join(artifact);
    std::fs::create_dir_all(&dir).unwrap();
    let listed: String = versions
        .iter()
        .map(|v| format!("<version>{v}</version>"))
        .collect();
    std::fs::write(
        dir.join("maven-metadata.xml"),
        format!(
            "<metadata><groupId>{group}</groupId><artifactId>{artifact}</artifactId><versioning>\
             <release>{}</release><versions>{listed}</versions></versioning></metadata>",
            versions.last().unwrap()
        ),
    )
    .unwrap();
}

/// A jar with the given entries.
pub(crate) fn jar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer.start_file("META-INF/MANIFEST.MF", options).unwrap();
    writer.write_all(b"Manifest-Version: 1.0\r\n\r\n").unwrap();
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A model jar as software.amazon.api.models publishes them.
pub(crate) fn model_jar(model_json: &[u8]) -> Vec<u8> {
    jar(&[
        (
            "META-INF/smithy/manifest",
            b"kinesis-video-webrtc-storage.json\n",
        ),
        (
            "META-INF/smithy/kinesis-video-webrtc-storage.json",
            model_json,
        ),
    ])
}

/// A local Maven repository holding the test stand-in generator under the smithy-rs
/// coordinates pinned in codegen/gradle.properties. Built once per test process with Gradle.
pub(crate) fn fake_generator_repo() -> &'static Path {
    static REPO: OnceLock<PathBuf> = OnceLock::new();
    REPO.get_or_init(|| {
        // Under target/, rebuilt once per test process; nothing is left in /tmp.
        let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fake-generator-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        for stale in std::fs::read_dir(env!("CARGO_TARGET_TMPDIR"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if stale
                .file_name()
                .to_string_lossy()
                .starts_with("fake-generator-")
            {
                let _ = std::fs::remove_dir_all(stale.path());
            }
        }
        let fixture = workspace_root().join("xtask/tests/fixtures/fake-generator");
        let build = work.join("fake-generator");
        copy_dir(&fixture, &build);
        let properties =
            std::fs::read_to_string(workspace_root().join("codegen/gradle.properties")).unwrap();
        let pin = |key: &str| {
            properties
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} not pinned"))
                .trim()
                .to_string()
        };
        let output = Command::new("gradle")
            .current_dir(&build)
            .env("GRADLE_OPTS", "-Dorg.gradle.daemon=false")
            .args(["--console=plain", "-q", "jar"])
            .arg(format!("-PsmithyVersion={}", pin("smithyVersion")))
            .output()
            .expect("gradle must be installed to build the test generator");
        assert!(
            output.status.success(),
            "building the fake generator failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let generator = std::fs::read(build.join("build/libs/fake-generator.jar")).unwrap();
        let repo = work.join("repo");
        let version = pin("smithyRsCodegenVersion");
        let empty = jar(&[]);
        publish(
            &repo,
            "software.amazon.smithy.rust",
            "codegen-client",
            &version,
            &generator,
        );
        for artifact in [
            "codegen-aws-sdk",
            "codegen-core",
            "rust-runtime",
            "aws-rust-runtime",
        ] {
            publish(
                &repo,
                "software.amazon.smithy.rust",
                artifact,
                &version,
                &empty,
            );
        }
        repo
    })
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "build" && entry.file_name() != ".gradle" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            copy(&entry.path(), &target);
        }
    }
}

/// A minimal HTTP/1.1 file server on 127.0.0.1 for a local Maven repository. Serves until
/// dropped; every request is answered and the connection closed.
pub(crate) struct FileServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    pub(crate) fn serve(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    answer(stream, &root);
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: TcpStream, root: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader
            .read_line(&mut header)
            .map(|n| n == 0)
            .unwrap_or(true)
            || header == "\r\n"
        {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let file = root.join(path.trim_start_matches('/'));
    let response = match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => {
            let mut bytes = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            bytes.extend_from_slice(&body);
            bytes
        }
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = stream.write_all(&response);
}
