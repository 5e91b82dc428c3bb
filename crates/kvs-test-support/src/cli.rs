//! Runs the `kvs-ingest` binary against an emulator reached the way AWS is: `--endpoint-url`,
//! `--region`, credentials from the environment only, and `--ca-file`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kvs_emulator::EmulatorHandle;

/// A `kvs-ingest` command line over one emulator.
#[derive(Debug, Clone)]
pub struct IngestCli {
    binary: PathBuf,
    region: String,
    endpoint_url: String,
    access_key_id: String,
    session_token: Option<String>,
    /// The secret access key given to the process (change it to test refusals).
    pub secret: String,
    /// The `--ca-file` (the emulator's CA unless changed).
    pub ca_file: PathBuf,
}

impl IngestCli {
    /// `binary` is `env!("CARGO_BIN_EXE_kvs-ingest")` in the CLI's tests.
    ///
    /// # Panics
    /// When the emulator has no TLS (its CA is the `--ca-file`).
    pub fn new(binary: impl Into<PathBuf>, emulator: &EmulatorHandle) -> Self {
        let key = emulator.access_key();
        Self {
            binary: binary.into(),
            region: emulator.region().to_owned(),
            endpoint_url: emulator.endpoint_url().to_owned(),
            access_key_id: key.access_key_id.clone(),
            session_token: key.session_token.clone(),
            secret: key.secret_access_key.clone(),
            ca_file: emulator.ca_cert_path().expect("TLS is on").to_path_buf(),
        }
    }

    /// The CLI over `emulator`, for tests outside the `kvs-ingest` package (which have no
    /// `CARGO_BIN_EXE_kvs-ingest`): see [`IngestCli::workspace_binary`].
    ///
    /// # Panics
    /// As [`IngestCli::new`] and [`IngestCli::workspace_binary`] do.
    pub fn from_workspace(emulator: &EmulatorHandle) -> Self {
        Self::new(Self::workspace_binary(), emulator)
    }

    /// This workspace's `kvs-ingest` binary, built (`cargo build -p kvs-ingest`, a no-op
    /// when it is up to date) once per test process into the target directory of the running
    /// test, so that it is never a stale one.
    ///
    /// # Panics
    /// When cargo cannot build it; the message has cargo's output.
    pub fn workspace_binary() -> PathBuf {
        static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        BUILT
            .get_or_init(|| {
                // target/<profile>/deps/<test>-<hash> -> target/<profile>
                let exe = std::env::current_exe().expect("the test's own path");
                let profile_dir = exe
                    .parent()
                    .and_then(Path::parent)
                    .expect("the test runs from target/<profile>/deps")
                    .to_path_buf();
                let target_dir = profile_dir.parent().expect("target/<profile>");
                let release = profile_dir.file_name().is_some_and(|n| n == "release");
                let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let mut build = Command::new(cargo);
                build
                    .current_dir(&workspace)
                    .args([
                        "build",
                        "--quiet",
                        "-p",
                        "kvs-ingest",
                        "--bin",
                        "kvs-ingest",
                    ])
                    .arg("--target-dir")
                    .arg(target_dir);
                if release {
                    build.arg("--release");
                }
                let out = build.output().expect("cargo runs");
                assert!(
                    out.status.success(),
                    "cargo build -p kvs-ingest failed:\n{}",
                    text(&out.stderr)
                );
                let binary =
                    profile_dir.join(format!("kvs-ingest{}", std::env::consts::EXE_SUFFIX));
                assert!(binary.is_file(), "{} was not built", binary.display());
                binary
            })
            .clone()
    }

    /// Run with `args` (and the AWS options), stdin empty.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, Stdio::null()).await
    }

    /// Run with `args` and this stdin.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Stdio) -> Output {
        let mut command = self.command(args);
        command.stdin(stdin);
        tokio::task::spawn_blocking(move || command.output().expect("kvs-ingest runs"))
            .await
            .expect("the command's thread")
    }

    /// The command line with `args` and the AWS options, for a test that connects its own
    /// stdio (and waits for the process itself).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .args([
                "--region",
                &self.region,
                "--endpoint-url",
                &self.endpoint_url,
            ])
            .arg("--ca-file")
            .arg(&self.ca_file)
            .env("AWS_ACCESS_KEY_ID", &self.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        match &self.session_token {
            Some(token) => command.env("AWS_SESSION_TOKEN", token),
            None => command.env_remove("AWS_SESSION_TOKEN"),
        };
        command
    }

    /// Trust `extra_pem` too: write the emulator's CA and it into one file in `dir` and use
    /// it as `--ca-file`.
    pub fn also_trust(&mut self, extra_pem: &str, dir: &Path) {
        let mut pem = std::fs::read_to_string(&self.ca_file).expect("the emulator's CA");
        pem.push_str(extra_pem);
        let combined = dir.join("trusted.pem");
        std::fs::write(&combined, pem).expect("CA file written");
        self.ca_file = combined;
    }
}

/// Lossy text of a process's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
