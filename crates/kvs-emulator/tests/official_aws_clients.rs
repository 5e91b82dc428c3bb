//! boto3 and the AWS CLI (installed from PyPI) against the emulator, as a user would point them:
//! `endpoint_url` plus the emulator's CA. The checks live in `tests/python/official_clients.py`.

mod support;

use support::TestEmulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_cannot_tell_the_difference() {
    let emu = TestEmulator::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/official_clients.py"
    );
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let command = emu.python_command(script, &home);
    emu.run_python(command, "official-clients: all checks passed")
        .await;
}
