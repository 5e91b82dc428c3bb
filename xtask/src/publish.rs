//! `cargo xtask publish [--dry-run] [--registry NAME] [--no-verify]`: every publishable crate of
//! the workspace, in dependency order, from a clean tree whose `generated/` is what regen made.
//!
//! What it refuses, before anything is uploaded:
//! * a tree with uncommitted or untracked files (`git status --porcelain`): what is published
//!   must be a commit;
//! * a stale `generated/` or `model/` ([`crate::regen::verify_committed`]: the crate matches its
//!   stamp and the lock, the workspace dependency points at it);
//! * a publishable crate that depends on an unpublishable one, or on a version of a workspace
//!   crate that the workspace does not have;
//! * a crate without the metadata crates.io shows (description, license, repository, readme,
//!   rust-version; keywords and categories too, but for the generated crate, whose manifest is
//!   the generator's);
//! * AWS's crate name on crates.io (regenerate with `--crate-name`).
//!
//! The order is a topological sort of the workspace dependencies that survive publishing
//! (normal and build dependencies, and dev-dependencies that carry a version), ties by name.
//! `--dry-run` packages and (unless `--no-verify`) builds every crate in one `cargo publish
//! --dry-run` over all of them, which resolves the not-yet-published ones locally. A real run
//! publishes one crate at a time (cargo waits until the registry serves each before the next).
//! A version the registry already has fails the run (the crate changed without a new version),
//! unless `--skip-existing` says that this run finishes an interrupted one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::package::Version;
use crate::project::{Project, AWS_CRATE_NAME};

/// Flags of `cargo xtask publish`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PublishArgs {
    /// Package and verify every crate, upload nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// The registry to publish to (a name from Cargo's configuration, e.g.
    /// `CARGO_REGISTRIES_<NAME>_INDEX`); default crates.io.
    #[arg(long, value_name = "NAME")]
    pub registry: Option<String>,

    /// Do not build each packaged crate before uploading it (`cargo publish --no-verify`).
    #[arg(long)]
    pub no_verify: bool,

    /// Skip crates whose version the registry already has (to finish an interrupted run).
    /// Without it such a crate fails the run: a changed crate needs a new version.
    #[arg(long)]
    pub skip_existing: bool,
}

/// One workspace package, as `cargo metadata` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePackage {
    /// Package name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Cargo's package id (as in `cargo check --message-format=json`).
    pub id: String,
    /// Its `Cargo.toml`.
    pub manifest_path: PathBuf,
    /// False for `publish = false`.
    pub publishable: bool,
    /// Names of the workspace packages it depends on (every kind).
    pub workspace_dependencies: Vec<String>,
    /// The workspace dependencies that stay in the published manifest: (name, requirement).
    pub published_dependencies: Vec<(String, String)>,
    /// What crates.io shows that is missing from its manifest.
    pub missing_metadata: Vec<&'static str>,
}

/// The workspace's packages (`cargo metadata --no-deps`).
pub fn workspace_packages(root: &Path) -> anyhow::Result<Vec<WorkspacePackage>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")?;
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata lists no packages")?;
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut result = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default().to_string();
        // `publish`: null = anywhere, [] = nowhere, [names] = those registries.
        let publishable = match &package["publish"] {
            Value::Null => true,
            Value::Array(registries) => !registries.is_empty(),
            _ => false,
        };
        let mut workspace_dependencies = BTreeSet::new();
        let mut published_dependencies = Vec::new();
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dependency["name"].as_str().unwrap_or_default();
            if dependency["path"].is_null() || !members.contains(dep_name) {
                continue;
            }
            workspace_dependencies.insert(dep_name.to_string());
            let requirement = dependency["req"].as_str().unwrap_or("*").to_string();
            // Cargo drops path-only dev-dependencies from the published manifest.
            let dropped = dependency["kind"] == "dev" && requirement == "*";
            if !dropped {
                published_dependencies.push((dep_name.to_string(), requirement));
            }
        }
        let mut missing_metadata = Vec::new();
        for (field, label) in [
            ("description", "description"),
            ("repository", "repository"),
            ("readme", "readme"),
            ("rust_version", "rust-version"),
        ] {
            if package[field].as_str().is_none_or(str::is_empty) {
                missing_metadata.push(label);
            }
        }
        if package["license"].is_null() && package["license_file"].is_null() {
            missing_metadata.push("license");
        }
        // The generated crate's manifest is the generator's (it writes no keywords or
        // categories, and generated/ is never edited by hand).
        let manifest_path = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let generated = manifest_path
            .parent()
            .and_then(Path::parent)
            .is_some_and(|dir| dir.ends_with("generated"));
        for (field, label) in [("keywords", "keywords"), ("categories", "categories")] {
            if !generated && package[field].as_array().is_none_or(Vec::is_empty) {
                missing_metadata.push(label);
            }
        }
        result.push(WorkspacePackage {
            name,
            version: package["version"].as_str().unwrap_or_default().to_string(),
            id: package["id"].as_str().unwrap_or_default().to_string(),
            manifest_path,
            publishable,
            workspace_dependencies: workspace_dependencies.into_iter().collect(),
            published_dependencies,
            missing_metadata,
        });
    }
    Ok(result)
}

/// The publishable packages in publishing order, after checking that every one can be published.
pub fn plan(packages: &[WorkspacePackage]) -> anyhow::Result<Vec<&WorkspacePackage>> {
    let by_name: BTreeMap<&str, &WorkspacePackage> =
        packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let publishable: Vec<&WorkspacePackage> = packages.iter().filter(|p| p.publishable).collect();
    let mut problems = Vec::new();
    for package in &publishable {
        if !package.missing_metadata.is_empty() {
            problems.push(format!(
                "{} lacks {} in {}",
                package.name,
                package.missing_metadata.join(", "),
                package.manifest_path.display()
            ));
        }
        for (dependency, requirement) in &package.published_dependencies {
            let target = by_name[dependency.as_str()];
            if !target.publishable {
                problems.push(format!(
                    "{} depends on {dependency}, which is `publish = false`: publish it too or \
                     make it a path-only dev-dependency",
                    package.name
                ));
            } else if !requirement_matches(requirement, &target.version) {
                problems.push(format!(
                    "{} asks for {dependency} {requirement}, but the workspace has {}; update the \
                     version next to its path in [workspace.dependencies]",
                    package.name, target.version
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "these crates cannot be published as they are:\n  - {}",
            problems.join("\n  - ")
        );
    }
    // Kahn's algorithm, ties by name, over the edges that survive publishing.
    let mut remaining: BTreeMap<&str, BTreeSet<&str>> = publishable
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.published_dependencies
                    .iter()
                    .map(|(d, _)| d.as_str())
                    .filter(|d| *d != p.name)
                    .collect(),
            )
        })
        .collect();
    let mut order = Vec::new();
    while !remaining.is_empty() {
        let ready: Vec<&str> = remaining
            .iter()
            .filter(|(_, deps)| deps.is_empty())
            .map(|(name, _)| *name)
            .collect();
        let Some(next) = ready.first().copied() else {
            bail!(
                "the publishable crates depend on each other in a cycle: {}",
                remaining.keys().copied().collect::<Vec<_>>().join(", ")
            );
        };
        remaining.remove(next);
        for deps in remaining.values_mut() {
            deps.remove(next);
        }
        order.push(by_name[next]);
    }
    Ok(order)
}

/// True when `version` satisfies a simple Cargo requirement (`^x.y.z`, `x.y.z`, `=x.y.z`, `*`).
fn requirement_matches(requirement: &str, version: &str) -> bool {
    let requirement = requirement.trim();
    if requirement == "*" {
        return true;
    }
    let Ok(have) = Version::parse(version) else {
        return false;
    };
    if let Some(exact) = requirement.strip_prefix('=') {
        return Version::parse(exact.trim()).is_ok_and(|want| want == have);
    }
    let wanted = requirement.trim_start_matches('^').trim();
    // "1.2" and "1" are shorthand for "1.2.0" and "1.0.0".
    let padded = match wanted.matches('.').count() {
        0 => format!("{wanted}.0.0"),
        1 => format!("{wanted}.0"),
        _ => wanted.to_string(),
    };
    Version::parse(&padded).is_ok_and(|want| have >= want && want.is_compatible_with(&have))
}

/// Fails unless `git status` shows nothing to commit under `root`.
pub fn ensure_clean_tree(root: &Path) -> anyhow::Result<()> {
    let output = Command::new("git")
        .current_dir(root)
        .args(["status", "--porcelain", "--untracked-files=normal"])
        .output()
        .context("cannot run git (publishing needs a git checkout)")?;
    if !output.status.success() {
        bail!(
            "{} is not a git checkout ({}); publish from a clone of the repository",
            root.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let dirty: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    if !dirty.is_empty() {
        bail!(
            "the tree has uncommitted changes; commit or stash them so that what is published is \
             a commit:\n  {}{}",
            dirty
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  "),
            if dirty.len() > 20 {
                format!("\n  ... {} more", dirty.len() - 20)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Runs `cargo xtask publish`.
pub fn run(project: &Project, args: &PublishArgs) -> anyhow::Result<()> {
    ensure_clean_tree(project.root())?;
    let state = crate::regen::verify_committed(project)
        .context("generated/ or model/ is stale; run `cargo xtask regen` and commit first")?;
    println!("publish: committed state is consistent ({state})");
    let packages = workspace_packages(project.root())?;
    let order = plan(&packages)?;
    let registry = args.registry.as_deref().unwrap_or("crates.io");
    if args.registry.is_none() {
        if let Some(aws) = order.iter().find(|p| p.name == AWS_CRATE_NAME) {
            bail!(
                "{} is AWS's crate name on crates.io; regenerate under a name of ours \
                 (`cargo xtask regen --model-file model/{} --crate-name <name>`) before \
                 publishing there",
                aws.name,
                crate::project::MODEL_FILE_NAME
            );
        }
    }
    println!(
        "publish: {} crates to {registry}, in dependency order:",
        order.len()
    );
    for (i, package) in order.iter().enumerate() {
        println!("  {}. {} {}", i + 1, package.name, package.version);
    }
    let mut common: Vec<String> = Vec::new();
    if let Some(name) = &args.registry {
        common.extend(["--registry".into(), name.clone()]);
    }
    if args.no_verify {
        common.push("--no-verify".into());
    }
    if args.dry_run {
        // One invocation: cargo verifies each crate against the others packaged beside it.
        let mut command = cargo_command(project.root());
        command.args(["publish", "--dry-run"]).args(&common);
        for package in &order {
            command.args(["--package", &package.name]);
        }
        let (ok, _) = run_streaming(&mut command)?;
        if !ok {
            bail!("cargo publish --dry-run failed (its output is above)");
        }
        println!(
            "publish: dry run done; {} crates would be published",
            order.len()
        );
        return Ok(());
    }
    let mut published = Vec::new();
    for package in &order {
        let mut command = cargo_command(project.root());
        command
            .args(["publish", "--package", &package.name])
            .args(&common);
        println!("publish: {} {}", package.name, package.version);
        let (ok, stderr) = run_streaming(&mut command)?;
        if ok {
            published.push(package.name.as_str());
        } else if stderr.contains("already exists") || stderr.contains("already uploaded") {
            if !args.skip_existing {
                bail!(
                    "{} {} is already in {registry}. A changed crate needs a new version (for \
                     the generated crate: `cargo xtask regen --model-file model/{} \
                     --crate-version X`); to finish an interrupted run, pass --skip-existing",
                    package.name,
                    package.version,
                    crate::project::MODEL_FILE_NAME
                );
            }
            println!(
                "publish: {} {} is already in {registry}; skipped (--skip-existing)",
                package.name, package.version
            );
        } else {
            bail!(
                "publishing {} {} failed (cargo's output is above); published in this run: {}. \
                 Fix it and run `cargo xtask publish --skip-existing` to publish the rest",
                package.name,
                package.version,
                if published.is_empty() {
                    "none".to_string()
                } else {
                    published.join(", ")
                }
            );
        }
    }
    println!(
        "publish: done; {} published, {} already there",
        published.len(),
        order.len() - published.len()
    );
    Ok(())
}

fn cargo_command(root: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root);
    command
}

/// Runs `command`, passing its stderr through while keeping a copy; returns (success, stderr).
fn run_streaming(command: &mut Command) -> anyhow::Result<(bool, String)> {
    let mut child = command
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run cargo")?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut copy = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.context("cannot read cargo's output")?;
        eprintln!("{line}");
        copy.push_str(&line);
        copy.push('\n');
    }
    let status = child.wait().context("cargo did not finish")?;
    Ok((status.success(), copy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, deps: &[(&str, &str)]) -> WorkspacePackage {
        WorkspacePackage {
            name: name.into(),
            version: "0.1.0".into(),
            id: name.into(),
            manifest_path: PathBuf::from(format!("crates/{name}/Cargo.toml")),
            publishable: true,
            workspace_dependencies: deps.iter().map(|(d, _)| d.to_string()).collect(),
            published_dependencies: deps
                .iter()
                .map(|(d, r)| (d.to_string(), r.to_string()))
                .collect(),
            missing_metadata: Vec::new(),
        }
    }

    #[test]
    fn crates_come_after_what_they_depend_on() {
        let packages = vec![
            package("ingest", &[("discovery", "^0.1.0"), ("media", "^0.1.0")]),
            package("discovery", &[("sdk", "^0.1.0")]),
            package("sdk", &[]),
            package("media", &[]),
            package("cli", &[("ingest", "^0.1.0"), ("emulator", "^0.1.0")]),
            package("emulator", &[("media", "^0.1.0")]),
        ];
        let order: Vec<&str> = plan(&packages)
            .unwrap()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            order,
            ["media", "emulator", "sdk", "discovery", "ingest", "cli"]
        );
    }

    #[test]
    fn unpublishable_dependencies_versions_and_metadata_are_refused() {
        let mut hidden = package("emulator", &[]);
        hidden.publishable = false;
        let mut bare = package("bare", &[]);
        bare.missing_metadata = vec!["license", "readme"];
        let packages = vec![
            package("cli", &[("emulator", "^0.1.0"), ("media", "^0.2")]),
            hidden,
            package("media", &[]),
            bare,
        ];
        let err = plan(&packages).unwrap_err().to_string();
        assert!(
            err.contains("cli depends on emulator, which is `publish = false`"),
            "{err}"
        );
        assert!(
            err.contains("cli asks for media ^0.2, but the workspace has 0.1.0"),
            "{err}"
        );
        assert!(err.contains("bare lacks license, readme"), "{err}");
    }

    #[test]
    fn a_cycle_is_named() {
        let packages = vec![
            package("a", &[("b", "^0.1.0")]),
            package("b", &[("a", "^0.1.0")]),
        ];
        let err = plan(&packages).unwrap_err().to_string();
        assert!(err.contains("cycle: a, b"), "{err}");
    }

    #[test]
    fn requirements_are_matched_as_cargo_does() {
        assert!(requirement_matches("^0.1.0", "0.1.3"));
        assert!(requirement_matches("0.1", "0.1.0"));
        assert!(!requirement_matches("^0.1.2", "0.1.0"));
        assert!(!requirement_matches("^0.2", "0.1.0"));
        assert!(requirement_matches("^1.0.0", "1.4.0"));
        assert!(!requirement_matches("^1.0.0", "2.0.0"));
        assert!(requirement_matches("=1.0.0", "1.0.0"));
        assert!(requirement_matches("*", "3.0.0"));
    }

    #[test]
    fn a_dirty_tree_is_refused_with_what_is_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let status = Command::new("git")
                .current_dir(dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        git(&["add", "a.txt"]);
        git(&["commit", "-q", "-m", "a"]);
        ensure_clean_tree(dir.path()).unwrap();
        std::fs::write(dir.path().join("a.txt"), "changed").unwrap();
        std::fs::write(dir.path().join("new.txt"), "new").unwrap();
        let err = ensure_clean_tree(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("uncommitted changes") && err.contains("a.txt") && err.contains("new.txt"),
            "{err}"
        );
        let not_git = tempfile::tempdir().unwrap();
        let err = ensure_clean_tree(not_git.path()).unwrap_err().to_string();
        assert!(err.contains("is not a git checkout"), "{err}");
    }
}
