//! `cargo xtask fuzz [--seconds N] [--runs N] [--replay] [--list] [TARGET]`: build the libFuzzer
//! binaries of `fuzz/` on the stable toolchain and run them, one target after another.
//!
//! The build is what `cargo fuzz build --sanitizer none` does (SanitizerCoverage through
//! `-Cpasses=sancov-module` and `-Cllvm-args`, `--cfg fuzzing`, debug assertions, release
//! optimizations, an explicit `--target` so that build scripts and proc macros are not
//! instrumented), without needing cargo-fuzz installed: every flag it takes is stable. No
//! sanitizer: AddressSanitizer needs nightly, and the code fuzzed here is safe Rust
//! (`unsafe_code = "forbid"` in every crate), where a sanitizer finds little that a panic or
//! a debug assertion does not. The run bounds each input's time and memory (`-timeout`,
//! `-rss_limit_mb`, `-malloc_limit_mb`), so hangs and unbounded allocations fail the run too.
//!
//! The build goes to `target/fuzz/`; new inputs to `target/fuzz/corpus/<target>/` (the
//! committed seeds in `fuzz/corpus/<target>/` are only read), crashes to
//! `target/fuzz/artifacts/<target>/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::project::Project;

/// Flags of `cargo xtask fuzz`.
#[derive(Debug, Clone, clap::Args)]
pub struct FuzzArgs {
    /// Run each target this long (libFuzzer's `-max_total_time`).
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,

    /// Stop each target after this many inputs instead (libFuzzer's `-runs`), whichever comes
    /// first with --seconds.
    #[arg(long)]
    pub runs: Option<u64>,

    /// Only run the committed corpus (and what earlier runs kept) through each target once.
    #[arg(long, conflicts_with_all = ["seconds", "runs"])]
    pub replay: bool,

    /// List the targets and stop.
    #[arg(long)]
    pub list: bool,

    /// Largest input, in bytes (libFuzzer's `-max_len`).
    #[arg(long, default_value_t = 16_384)]
    pub max_len: usize,

    /// The target to run (default: every one, in turn).
    pub target: Option<String>,
}

/// Per input: at most this many seconds (a hang), this much memory in all and in one
/// allocation (an unbounded allocation).
const TIMEOUT_SECONDS: u32 = 10;
const RSS_LIMIT_MB: u32 = 2048;
const MALLOC_LIMIT_MB: u32 = 512;

/// The SanitizerCoverage flags of `cargo fuzz build --sanitizer none`, all stable.
pub const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// The targets as `fuzz/fuzz_targets/*.rs` names them, sorted.
pub fn targets(project: &Project) -> anyhow::Result<Vec<String>> {
    let dir = project.root().join("fuzz/fuzz_targets");
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> anyhow::Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")
}

/// Where the fuzz build and its runs keep their files.
fn fuzz_dir(project: &Project) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project.root().join("target"))
        .join("fuzz")
}

/// Build every libFuzzer binary; returns the directory they are in.
pub fn build(project: &Project) -> anyhow::Result<PathBuf> {
    let triple = host_triple()?;
    let target_dir = fuzz_dir(project);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("fuzz: building the libFuzzer targets (stable, SanitizerCoverage, no sanitizer)");
    let status = Command::new(cargo)
        .current_dir(project.root().join("fuzz"))
        .args([
            "build",
            "--release",
            "--locked",
            "--bins",
            "--target",
            &triple,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        // Set for the workspace's own builds; its flags must not reach this one.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("cannot run cargo build for fuzz/")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    Ok(target_dir.join(triple).join("release"))
}

/// Runs `cargo xtask fuzz`.
pub fn run(project: &Project, args: &FuzzArgs) -> anyhow::Result<()> {
    let all = targets(project)?;
    if args.list {
        for name in &all {
            println!("{name}");
        }
        return Ok(());
    }
    let chosen: Vec<String> = match &args.target {
        Some(name) if all.contains(name) => vec![name.clone()],
        Some(name) => bail!("no fuzz target {name:?}; there are: {}", all.join(", ")),
        None => all,
    };
    let bin = build(project)?;
    let dir = fuzz_dir(project);
    let mut failed = Vec::new();
    for name in &chosen {
        if !fuzz_one(project, &bin, &dir, name, args)? {
            failed.push(name.as_str());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz target(s) failed: {} (the input is in {}/artifacts/<target>/; minimize it with \
             `{}/<target> -minimize_crash=1 -runs=10000 <input>`, then add a regression test to \
             the crate that owns the parser)",
            failed.join(", "),
            dir.display(),
            bin.display()
        );
    }
    Ok(())
}

/// One target: replay, or fuzz for the time or runs asked. Whether it passed.
fn fuzz_one(
    project: &Project,
    bin: &Path,
    dir: &Path,
    name: &str,
    args: &FuzzArgs,
) -> anyhow::Result<bool> {
    let seeds = project.root().join("fuzz/corpus").join(name);
    let corpus = dir.join("corpus").join(name);
    let artifacts = dir.join("artifacts").join(name);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut command = Command::new(bin.join(name));
    command
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(format!("-timeout={TIMEOUT_SECONDS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"))
        .arg(format!("-max_len={}", args.max_len))
        .arg("-print_final_stats=1");
    if args.replay {
        command.arg("-runs=0");
        println!("fuzz: {name}: replaying its corpus");
    } else {
        command.arg(format!("-max_total_time={}", args.seconds));
        if let Some(runs) = args.runs {
            command.arg(format!("-runs={runs}"));
        }
        println!(
            "fuzz: {name}: {} s{}",
            args.seconds,
            args.runs
                .map(|r| format!(" or {r} inputs"))
                .unwrap_or_default()
        );
    }
    // New inputs go to the first directory; the committed seeds are only read.
    command.arg(&corpus).arg(&seeds);
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", bin.join(name).display()))?;
    Ok(status.success())
}
