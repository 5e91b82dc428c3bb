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
