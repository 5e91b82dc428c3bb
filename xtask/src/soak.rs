//! `cargo xtask soak`: builds `kvs-emulator` and `kvs-soak` (release by default: a soak
//! measures the sender as it ships) and runs the soak with the given flags. What it prints and
//! its goals are described in the `kvs-soak` crate's docs.

use std::process::Command;

use anyhow::Context as _;

use crate::project::Project;

/// Flags of `cargo xtask soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How long to run, after the warm-up.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// How many sessions ingest at once.
    #[arg(long, default_value_t = 20)]
    pub sessions: u32,
    /// Build and run the debug binaries instead of release ones.
    #[arg(long)]
    pub debug: bool,
    /// Further flags for `kvs-soak` (after `--`): `--fault-every`, `--warm-up`, `--keep-alive`,
    /// `--json`, `--samples FILE`.
    #[arg(last = true)]
    pub soak_args: Vec<String>,
}

/// Runs `cargo xtask soak`.
pub fn run(project: &Project, args: &SoakArgs) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = if args.debug { "debug" } else { "release" };
    let mut build = Command::new(&cargo);
    build
        .current_dir(project.root())
        .args(["build", "-p", "kvs-emulator", "-p", "kvs-soak"]);
    if !args.debug {
        build.arg("--release");
    }
    let status = build.status().context("cannot run cargo build")?;
    anyhow::ensure!(
        status.success(),
        "building kvs-emulator and kvs-soak failed"
    );

    let bin = project.root().join("target").join(profile);
    let status = Command::new(bin.join("kvs-soak"))
        .arg("--minutes")
        .arg(args.minutes.to_string())
        .arg("--sessions")
        .arg(args.sessions.to_string())
        .arg("--emulator")
        .arg(bin.join("kvs-emulator"))
        .args(&args.soak_args)
        .status()
        .context("cannot run kvs-soak")?;
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => anyhow::bail!("the soak ran but missed a goal (see its report above)"),
        _ => anyhow::bail!("the soak could not run ({status})"),
    }
}
