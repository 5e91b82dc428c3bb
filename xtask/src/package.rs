//! The generated crate as a package: its name and version (`regen --crate-name/--crate-version`,
//! recorded in `model/model.lock.json`), the `[workspace.dependencies]` entry through which the
//! hand-written crates use it, and the version a model change calls for.
//!
//! The generator's own name for the crate is AWS's, `aws-sdk-kinesisvideowebrtcstorage`, and its
//! version is the one AWS published from the pinned generator release (1.109.0): with neither
//! knob set, regen produces AWS's crate byte for byte. That name belongs to AWS on crates.io, so
//! the crate this project publishes is the same generator output under a name of ours
//! ([`PUBLISHED_CRATE_NAME`]) with a version of ours. The hand-written crates depend on it as
//!
//! ```toml
//! aws-sdk-kinesisvideowebrtcstorage = { package = "kvs_sdk_kinesisvideowebrtcstorage", path = "generated/kvs_sdk_kinesisvideowebrtcstorage", version = "1.0.0", ... }
//! ```
//!
//! so their code keeps the `aws_sdk_kinesisvideowebrtcstorage::` paths whichever package it is,
//! and what they publish names our package: a published `kvs-webrtc-discovery` resolves to the
//! client generated here, never to AWS's crate of the same API. regen keeps that one entry in
//! step with the lock ([`set_workspace_dependency`]); `regen --check` and the workspace test
//! `committed_state` fail when it is not.

use std::cmp::Ordering;
use std::fmt;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::project::{AWS_CRATE_NAME, DEPENDENCY_KEY};

/// The name this project publishes the generated crate under. Underscores, not hyphens: the
/// generator writes `use <crate> as <name without "aws-sdk-">;` into the crate's docs and
/// README, which is Rust only when that name is an identifier (see [`validate_name`]).
pub const PUBLISHED_CRATE_NAME: &str = "kvs_sdk_kinesisvideowebrtcstorage";

/// The generated crate's package name and version, as recorded in the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CratePackage {
    /// The package name (`[package] name`), also its directory under `generated/`.
    pub name: String,
    /// The package version.
    pub version: String,
}

impl CratePackage {
    /// Checks a name and a version given on the command line.
    pub fn new(name: &str, version: &str) -> anyhow::Result<Self> {
        validate_name(name)?;
        Version::parse(version).with_context(|| {
            format!("--crate-version {version} is not a version (MAJOR.MINOR.PATCH)")
        })?;
        Ok(Self {
            name: name.to_string(),
            version: version.to_string(),
        })
    }

    /// True when this is AWS's crate name (which only AWS may publish on crates.io).
    pub fn is_aws_name(&self) -> bool {
        self.name == AWS_CRATE_NAME
    }

    /// The library name in Rust code (`-` becomes `_`).
    pub fn lib_name(&self) -> String {
        self.name.replace('-', "_")
    }
}

impl fmt::Display for CratePackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// Cargo's rules for a package name that crates.io accepts (ASCII letters, digits, `-` and `_`,
/// starting with a letter, at most 64 characters), and the generator's: its crate docs and README
/// carry the example `use <lib name> as <name without the "aws-sdk-" prefix>;`, which is Rust
/// only when that rest is an identifier, so a name other than `aws-sdk-...` has no `-`. (As a
/// doctest that example still fails for such a name, the crate being named twice next to
/// rustdoc's injected `extern crate`; `cargo xtask test` skips that one doctest and says so.)
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!(
            "--crate-name {name:?} is not a valid package name (ASCII letters, digits, `-` and \
             `_`, starting with a letter, at most 64 characters)"
        );
    }
    let short = name.strip_prefix("aws-sdk-").unwrap_or(name);
    if short.contains('-') {
        bail!(
            "--crate-name {name:?}: use `_` instead of `-` (e.g. {:?}); the generator writes \
             `use {} as {short};` into the crate's docs and README, which is Rust only when \
             {short:?} is an identifier",
            name.replace('-', "_"),
            name.replace('-', "_")
        );
    }
    Ok(())
}

/// A semantic version `MAJOR.MINOR.PATCH[-PRE][+BUILD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// Pre-release identifiers (after `-`), empty for a release.
    pub pre: String,
}

impl Version {
    /// Parses `text`; build metadata (after `+`) is accepted and ignored.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let core = text.split('+').next().unwrap_or_default();
        let (numbers, pre) = match core.split_once('-') {
            Some((numbers, pre)) if !pre.is_empty() => (numbers, pre.to_string()),
            Some(_) => bail!("{text:?} has an empty pre-release"),
            None => (core, String::new()),
        };
        let parts: Vec<&str> = numbers.split('.').collect();
        if parts.len() != 3 {
            bail!("{text:?} does not have three numbers");
        }
        let number = |part: &str| -> anyhow::Result<u64> {
            if part.is_empty() || (part.len() > 1 && part.starts_with('0')) {
                bail!("{text:?} has a malformed number {part:?}");
            }
            part.parse()
                .with_context(|| format!("{text:?} has a malformed number {part:?}"))
        };
        Ok(Self {
            major: number(parts[0])?,
            minor: number(parts[1])?,
            patch: number(parts[2])?,
            pre,
        })
    }

    /// True when Cargo treats a `^self` requirement as satisfied by `other` (same leftmost
    /// non-zero component): a consumer of `self` may get `other` without asking.
    pub fn is_compatible_with(&self, other: &Version) -> bool {
        match (self.major, self.minor) {
            (0, 0) => other.major == 0 && other.minor == 0 && other.patch == self.patch,
            (0, minor) => other.major == 0 && other.minor == minor,
            (major, _) => other.major == major,
        }
    }

    /// The version that follows `self` for a change of kind `change` under Cargo's semver
    /// rules: a breaking change bumps the leftmost non-zero component (the major version from
    /// 1.0.0 on), an addition the next one, anything else the patch.
    pub fn next(&self, change: Change) -> Version {
        let (major, minor, patch) = (self.major, self.minor, self.patch);
        let (major, minor, patch) = match (change, major, minor) {
            (Change::Breaking, 0, 0) => (0, 0, patch + 1),
            (Change::Breaking, 0, _) => (0, minor + 1, 0),
            (Change::Breaking, _, _) => (major + 1, 0, 0),
            (Change::Additive, 0, _) => (0, minor, patch + 1),
            (Change::Additive, _, _) => (major, minor + 1, 0),
            (Change::Patch, _, _) => (major, minor, patch + 1),
        };
        Version {
            major,
            minor,
            patch,
            pre: String::new(),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

/// How much a new version of the crate changed, for [`Version::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Something a user of the old API may rely on is gone or different.
    Breaking,
    /// Only additions that no user of the old API can trip over.
    Additive,
    /// No public API change, but the crate's files changed.
    Patch,
}

/// What a model change asks of the version: the suggestion and whether the given version meets
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionAdvice {
    /// The version before the change.
    pub previous: Version,
    /// The version the crate has now.
    pub current: Version,
    /// The version the change calls for (`None` when nothing changed).
    pub suggested: Option<Version>,
    /// True when `current` is at least the suggested version (for a change to the crate's files
    /// alone: any bigger version).
    pub sufficient: bool,
}

/// Compares the version the crate got with the one a change of kind `change` (or no change)
/// needs after `previous`.
pub fn advise(previous: &Version, current: &Version, change: Option<Change>) -> VersionAdvice {
    let suggested = change.map(|change| previous.next(change));
    let sufficient = match change {
        None => true,
        Some(Change::Patch) => current > previous,
        Some(change) => current >= &previous.next(change),
    };
    VersionAdvice {
        previous: previous.clone(),
        current: current.clone(),
        suggested,
        sufficient,
    }
}

/// The `[workspace.dependencies]` entry for the generated crate, as written in `Cargo.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceDependency {
    /// `package = "..."` (absent: the key itself).
    pub package: Option<String>,
    /// `path = "..."`.
    pub path: Option<String>,
    /// `version = "..."`.
    pub version: Option<String>,
}

impl WorkspaceDependency {
    /// Fails unless the entry points at `krate` in `generated/` with its version.
    pub fn expect_points_at(&self, krate: &CratePackage) -> anyhow::Result<()> {
        let package = self.package.as_deref().unwrap_or(DEPENDENCY_KEY);
        let path = format!("generated/{}", krate.name);
        if package != krate.name
            || self.path.as_deref() != Some(path.as_str())
            || self.version.as_deref() != Some(krate.version.as_str())
        {
            bail!(
                "the workspace dependency `{DEPENDENCY_KEY}` in Cargo.toml names package {package} \
                 at {} version {}, but the generated crate is {} at {path}; run `cargo xtask regen \
                 --model-file model/{}` (it rewrites that entry) and commit",
                self.path.as_deref().unwrap_or("(no path)"),
                self.version.as_deref().unwrap_or("(no version)"),
                krate,
                crate::project::MODEL_FILE_NAME
            );
        }
        Ok(())
    }
}

/// The line of `manifest` (a workspace `Cargo.toml`) that declares [`DEPENDENCY_KEY`] in
/// `[workspace.dependencies]`: its index and the inline table's entries.
fn find_entry(manifest: &str) -> anyhow::Result<(usize, Vec<(String, String)>)> {
    let mut in_section = false;
    for (index, line) in manifest.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed == "[workspace.dependencies]";
            continue;
        }
        if !in_section {
            continue;
        }
        let Some(rest) = trimmed.strip_prefix(DEPENDENCY_KEY) else {
            continue;
        };
        let Some(table) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let table = table.trim();
        let Some(inner) = table.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
            bail!(
                "Cargo.toml line {}: `{DEPENDENCY_KEY}` must be an inline table on one line \
                 (`{{ package = ..., path = ..., version = ... }}`), which regen keeps up to date",
                index + 1
            );
        };
        return Ok((index, split_inline_table(inner)?));
    }
    bail!(
        "Cargo.toml has no `{DEPENDENCY_KEY} = {{ ... }}` line in [workspace.dependencies]; add \
         `{DEPENDENCY_KEY} = {{ package = \"<crate>\", path = \"generated/<crate>\", version = \
         \"<version>\" }}` (regen keeps it up to date)"
    )
}

/// `key = value` entries of an inline table's inside, split at top-level commas.
fn split_inline_table(inner: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut entries = Vec::new();
    let mut depth = 0i32;
    let mut in_string = false;
    let mut current = String::new();
    for c in inner.chars() {
        match c {
            '"' => in_string = !in_string,
            '[' | '{' if !in_string => depth += 1,
            ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                push_entry(&mut entries, &current)?;
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    push_entry(&mut entries, &current)?;
    Ok(entries)
}

fn push_entry(entries: &mut Vec<(String, String)>, text: &str) -> anyhow::Result<()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    let (key, value) = text
        .split_once('=')
        .with_context(|| format!("`{text}` in the `{DEPENDENCY_KEY}` entry is not key = value"))?;
    entries.push((key.trim().to_string(), value.trim().to_string()));
    Ok(())
}

fn unquote(value: &str) -> Option<String> {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_string)
}

/// Reads the generated crate's `[workspace.dependencies]` entry from a workspace manifest.
pub fn read_workspace_dependency(manifest: &str) -> anyhow::Result<WorkspaceDependency> {
    let (_, entries) = find_entry(manifest)?;
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| unquote(v))
    };
    Ok(WorkspaceDependency {
        package: get("package"),
        path: get("path"),
        version: get("version"),
    })
}

/// `manifest` with the generated crate's entry pointing at `krate`: `package`, `path` and
/// `version` set (in that order, first), every other key (features, ...) kept as written.
pub fn set_workspace_dependency(manifest: &str, krate: &CratePackage) -> anyhow::Result<String> {
    let (index, entries) = find_entry(manifest)?;
    let mut parts = vec![
        format!("package = \"{}\"", krate.name),
        format!("path = \"generated/{}\"", krate.name),
        format!("version = \"{}\"", krate.version),
    ];
    parts.extend(
        entries
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "package" | "path" | "version"))
            .map(|(key, value)| format!("{key} = {value}")),
    );
    let line = format!("{DEPENDENCY_KEY} = {{ {} }}", parts.join(", "));
    let mut out: Vec<&str> = manifest.lines().collect();
    out[index] = &line;
    let mut text = out.join("\n");
    if manifest.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "[workspace]\nmembers = [\"generated/*\"]\n\n[workspace.dependencies]\n\
        anyhow = \"1\"\n\
        aws-sdk-kinesisvideowebrtcstorage = { path = \"generated/aws-sdk-kinesisvideowebrtcstorage\", version = \"1.109.0\", default-features = false, features = [\"a\", \"b\"] }\n\
        zip = \"9\"\n";

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn the_entry_is_read_and_rewritten_keeping_the_other_keys() {
        let dep = read_workspace_dependency(MANIFEST).unwrap();
        assert_eq!(dep.package, None);
        assert_eq!(
            dep.path.as_deref(),
            Some("generated/aws-sdk-kinesisvideowebrtcstorage")
        );
        dep.expect_points_at(&CratePackage::new(AWS_CRATE_NAME, "1.109.0").unwrap())
            .unwrap();
        let ours = CratePackage::new(PUBLISHED_CRATE_NAME, "1.0.0").unwrap();
        let err = dep.expect_points_at(&ours).unwrap_err().to_string();
        assert!(err.contains("--model-file model/"), "{err}");

        let rewritten = set_workspace_dependency(MANIFEST, &ours).unwrap();
        assert!(rewritten.contains(
            "aws-sdk-kinesisvideowebrtcstorage = { package = \"kvs_sdk_kinesisvideowebrtcstorage\", \
             path = \"generated/kvs_sdk_kinesisvideowebrtcstorage\", version = \"1.0.0\", \
             default-features = false, features = [\"a\", \"b\"] }\n"
        ), "{rewritten}");
        assert!(rewritten.starts_with("[workspace]\n") && rewritten.ends_with("zip = \"9\"\n"));
        read_workspace_dependency(&rewritten)
            .unwrap()
            .expect_points_at(&ours)
            .unwrap();
        // Idempotent.
        assert_eq!(
            set_workspace_dependency(&rewritten, &ours).unwrap(),
            rewritten
        );
    }

    #[test]
    fn a_missing_or_multi_line_entry_is_named() {
        let err = read_workspace_dependency("[workspace.dependencies]\nzip = \"9\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no `aws-sdk-kinesisvideowebrtcstorage"),
            "{err}"
        );
        let err = read_workspace_dependency(
            "[workspace.dependencies]\naws-sdk-kinesisvideowebrtcstorage = \"1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must be an inline table"), "{err}");
        // Only [workspace.dependencies] counts.
        assert!(read_workspace_dependency(
            "[dependencies]\naws-sdk-kinesisvideowebrtcstorage = { path = \"x\" }\n"
        )
        .is_err());
    }

    #[test]
    fn names_and_versions_are_checked() {
        assert!(CratePackage::new("kvs_sdk_x", "1.0.0").is_ok());
        assert!(CratePackage::new("aws-sdk-x", "1.0.0").is_ok());
        let err = CratePackage::new("kvs-sdk-x", "1.0.0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("use `_` instead of `-`") && err.contains("kvs_sdk_x"),
            "{err}"
        );
        for bad in ["", "1abc", "has space", "ünï"] {
            assert!(CratePackage::new(bad, "1.0.0").is_err(), "{bad}");
        }
        for bad in ["1", "1.0", "01.0.0", "1.0.x", "1.0.0-"] {
            assert!(CratePackage::new("a", bad).is_err(), "{bad}");
        }
        assert_eq!(v("1.2.3-rc.1+build").to_string(), "1.2.3-rc.1");
        assert!(v("1.0.0-rc.1") < v("1.0.0"));
        assert!(v("1.10.0") > v("1.9.9"));
    }

    #[test]
    fn the_next_version_follows_cargo_semver() {
        assert_eq!(v("1.4.2").next(Change::Breaking), v("2.0.0"));
        assert_eq!(v("1.4.2").next(Change::Additive), v("1.5.0"));
        assert_eq!(v("1.4.2").next(Change::Patch), v("1.4.3"));
        assert_eq!(v("0.3.1").next(Change::Breaking), v("0.4.0"));
        assert_eq!(v("0.3.1").next(Change::Additive), v("0.3.2"));
        assert_eq!(v("0.0.3").next(Change::Breaking), v("0.0.4"));
    }

    #[test]
    fn advice_says_whether_the_given_version_is_enough() {
        let a = advise(&v("1.0.0"), &v("1.0.0"), Some(Change::Breaking));
        assert_eq!(a.suggested, Some(v("2.0.0")));
        assert!(!a.sufficient);
        assert!(!advise(&v("1.0.0"), &v("1.1.0"), Some(Change::Breaking)).sufficient);
        assert!(advise(&v("1.0.0"), &v("2.0.0"), Some(Change::Breaking)).sufficient);
        assert!(advise(&v("1.0.0"), &v("3.0.0"), Some(Change::Breaking)).sufficient);
        assert!(!advise(&v("1.0.0"), &v("1.0.1"), Some(Change::Additive)).sufficient);
        assert!(advise(&v("1.0.0"), &v("1.1.0"), Some(Change::Additive)).sufficient);
        assert!(advise(&v("0.2.0"), &v("0.2.1"), Some(Change::Additive)).sufficient);
        assert!(!advise(&v("1.0.0"), &v("1.0.0"), Some(Change::Patch)).sufficient);
        assert!(advise(&v("1.0.0"), &v("1.0.0"), None).sufficient);
    }
}
