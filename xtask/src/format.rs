//! The generator formats its output with `cargo fmt`, but when that fails it only logs a warning
//! and exits 0 (for example inside a workspace that does not exclude its output directory). An
//! unformatted crate would then be committed and fail every later `--check`, so regen verifies
//! the formatting itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// What the smithy-rs plugin logs when its `cargo fmt` step fails.
const FMT_FAILED_MARKER: &str = "Failed to run cargo fmt";

/// The options the smithy-rs plugin passes to `cargo fmt`.
const GENERATOR_RUSTFMT_ARGS: [&str; 2] = ["--config", "max_width=150"];

/// Fails unless the generator's `cargo fmt` step ran and every `.rs` file under `crate_dir` is
/// formatted as that step formats it. `gradle_output` is what Gradle printed.
pub fn ensure_formatted(crate_dir: &Path, gradle_output: &str) -> anyhow::Result<()> {
    if let Some(line) = gradle_output
        .lines()
        .find(|line| line.contains(FMT_FAILED_MARKER))
    {
        bail!(
            "the generator's `cargo fmt` step failed ({}); the output is not formatted and was \
             not used. Check that cargo and rustfmt are on PATH (`rustup component add rustfmt`) \
             and that the output directory is excluded from any enclosing Cargo workspace",
            line.trim()
        );
    }
    let files = rust_files(crate_dir)?;
    if files.is_empty() {
        return Ok(());
    }
    let edition = edition(crate_dir)?;
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let output = Command::new(&rustfmt)
        .args(["--check", "--edition", &edition])
        .args(GENERATOR_RUSTFMT_ARGS)
        .args(&files)
        .output()
        .with_context(|| {
            "cannot run rustfmt to check the generator's output; install it with \
             `rustup component add rustfmt`"
        })?;
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let unformatted: Vec<&str> = stdout
            .lines()
            .filter_map(|line| line.strip_prefix("Diff in "))
            .take(10)
            .collect();
        bail!(
            "the generator's output is not formatted (its `cargo fmt` step did not run or \
             failed): {}{}",
            if unformatted.is_empty() {
                String::from_utf8_lossy(&output.stderr).trim().to_string()
            } else {
                unformatted.join(", ")
            },
            if unformatted.len() == 10 { ", ..." } else { "" }
        );
    }
    Ok(())
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The crate's edition from its manifest (`edition = "2021"`), 2015 when unset, as cargo does.
fn edition(crate_dir: &Path) -> anyhow::Result<String> {
    let manifest = crate_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("edition"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_string())
        .next()
        .unwrap_or_else(|| "2015".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_with(lib: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"x\"\nedition = \"2021\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), lib).unwrap();
        dir
    }

    #[test]
    fn formatted_output_passes() {
        let dir = crate_with("pub fn f() {}\n");
        ensure_formatted(dir.path(), "BUILD SUCCESSFUL").unwrap();
    }

    #[test]
    fn unformatted_output_is_refused_with_the_files() {
        let dir = crate_with("pub fn f( ) {   }\n");
        let err = ensure_formatted(dir.path(), "").unwrap_err().to_string();
        assert!(
            err.contains("not formatted") && err.contains("lib.rs"),
            "{err}"
        );
    }

    #[test]
    fn the_plugins_fmt_warning_is_refused_even_if_the_files_look_fine() {
        let dir = crate_with("pub fn f() {}\n");
        let err = ensure_formatted(
            dir.path(),
            "[WARNING] Failed to run cargo fmt: [cargo, fmt]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`cargo fmt` step failed"), "{err}");
    }

    #[test]
    fn the_edition_comes_from_the_manifest() {
        let dir = crate_with("");
        assert_eq!(edition(dir.path()).unwrap(), "2021");
    }
}
