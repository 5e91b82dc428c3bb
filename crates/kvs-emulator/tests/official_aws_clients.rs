//! boto3 and the AWS CLI (installed from PyPI) against the emulator, as a user would point them:
//! `endpoint_url` plus the emulator's CA. The checks live in `tests/python/official_clients.py`.

mod support;

use std::process::Command;

use support::TestEmulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_cannot_tell_the_difference() {
    let emu = TestEmulator::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/official_clients.py"
    );
    let key = emu.key();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut command = Command::new("python3");
    command
        .arg(script)
        .env("KVS_ENDPOINT", emu.handle.endpoint_url())
        .env("KVS_REGION", emu.handle.region())
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key)
        .env("AWS_CA_BUNDLE", emu.handle.ca_cert_path().unwrap())
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
    // The emulator runs on this test's runtime, so the blocking child runs on a blocking thread.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("python3 runs; install the clients with `pip install boto3 awscli`");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "official clients failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("official-clients: all checks passed"),
        "{stdout}"
    );
}
