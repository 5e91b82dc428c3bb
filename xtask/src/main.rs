//! `cargo xtask`: build automation for this workspace, written in Rust (the
//! [cargo-xtask](https://github.com/matklad/cargo-xtask) pattern).
//!
//! `regen`: pull the Kinesis Video WebRTC Storage Smithy model, run the
//! official smithy-rs generator on it through the Gradle build in `codegen/`, and swap the result
//! into `generated/`. `regen --check` proves that `generated/` is exactly what the locked model and
//! the pinned generator produce. See `cargo xtask regen --help`.
//!
//! `test`: provision what the test suites need (see `xtask::test_env`) and run every test.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <xtask::cli::Cli as clap::Parser>::parse();
    match xtask::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(xtask::exit_code(&err))
        }
    }
}
