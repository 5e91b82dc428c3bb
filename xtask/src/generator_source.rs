//! A smithy-rs source tree given with `--generator-source`: unpacked, checked against the pin in
//! `codegen/gradle.properties`, identified by its commit and by a hash of what the build reads.
//!
//! The build itself (Kotlin compiler, flags, the two build-time inputs, jar layout) is in
//! `codegen/generator-from-source.gradle`; this module only prepares its inputs.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::lock::sha256_hex;

/// Paths (relative to the tree's root) whose contents the generator build reads. Their hash,
/// with the commit and the build script, keys the jar cache.
const BUILD_INPUTS: &[&str] = &[
    "LICENSE",
    "NOTICE",
    "gradle.properties",
    "gradle/libs.versions.toml",
    "codegen-core/src/main",
    "codegen-client/src/main",
    "aws/codegen-aws-sdk/src/main",
    "rust-runtime/inlineable",
    "aws/rust-runtime/aws-inlineable",
];

/// A smithy-rs tree ready for the generator build.
#[derive(Debug)]
pub struct GeneratorSource {
    /// What the user passed.
    pub given: PathBuf,
    /// The tree's root directory (inside `unpacked` for an archive).
    pub root: PathBuf,
    /// The commit the tree is, which becomes the generated crate's `codegen-version`.
    pub commit: String,
    /// Where the commit came from, for the summary.
    pub commit_origin: &'static str,
    /// `codegenVersion` from the tree's gradle.properties.
    pub codegen_version: String,
    /// sha256 over the build inputs' paths and contents.
    pub inputs_sha256: String,
    /// Keeps an unpacked archive alive until the generator has been built and run.
    _unpacked: Option<tempfile::TempDir>,
}

impl GeneratorSource {
    /// Opens `path` (a directory or a `.tar.gz`), unpacking an archive under `scratch_parent`,
    /// and checks it. `commit_override` wins over the commit the source carries; `pinned` is the
    /// `smithyRsCodegenVersion` of `codegen/gradle.properties`.
    pub fn open(
        path: &Path,
        commit_override: Option<&str>,
        pinned: &str,
        scratch_parent: &Path,
    ) -> anyhow::Result<Self> {
        let metadata = std::fs::metadata(path).with_context(|| {
            format!(
                "--generator-source {}: no such file or directory; pass a smithy-rs checkout or \
                 its release source archive (.tar.gz)",
                path.display()
            )
        })?;
        let (root, unpacked, carried_commit) = if metadata.is_dir() {
            let commit = git_head(path);
            (
                path.to_path_buf(),
                None,
                commit.map(|c| (c, "git rev-parse HEAD")),
            )
        } else {
            std::fs::create_dir_all(scratch_parent)
                .with_context(|| format!("cannot create {}", scratch_parent.display()))?;
            let dir = tempfile::Builder::new()
                .prefix("smithy-rs-source-")
                .tempdir_in(scratch_parent)
                .with_context(|| {
                    format!("cannot create a directory in {}", scratch_parent.display())
                })?;
            let commit = unpack_tar_gz(path, dir.path())?;
            let root = single_top_directory(dir.path())
                .with_context(|| format!("{} is not a smithy-rs source archive", path.display()))?;
            (
                root,
                Some(dir),
                commit.map(|c| (c, "the archive's pax header")),
            )
        };
        if !root.join("codegen-core").is_dir() || !root.join("gradle.properties").is_file() {
            bail!(
                "{} is not a smithy-rs source tree (it has no codegen-core/ and gradle.properties); \
                 pass the root of a smithy-rs checkout or its release source archive",
                path.display()
            );
        }
        let properties = read_properties(&root.join("gradle.properties"))?;
        let codegen_version = properties.get("codegenVersion").cloned().with_context(|| {
            format!("{}/gradle.properties has no codegenVersion", path.display())
        })?;
        if codegen_version != pinned {
            bail!(
                "{} is smithy-rs codegenVersion {codegen_version}, but codegen/gradle.properties pins \
                 smithyRsCodegenVersion={pinned}; pass the source of the pinned release, or change \
                 the pin (and moduleVersion) in codegen/gradle.properties",
                path.display()
            );
        }
        let (commit, commit_origin) = match (commit_override, carried_commit) {
            (Some(commit), _) => (commit.to_string(), "--generator-commit"),
            (None, Some((commit, origin))) => (commit, origin),
            (None, None) => bail!(
                "cannot tell which smithy-rs commit {} is (no git checkout, no commit in the \
                 archive); pass --generator-commit SHA (upstream: SMITHY_RS_VERSION_COMMIT_HASH_OVERRIDE). \
                 It becomes the generated crate's codegen-version",
                path.display()
            ),
        };
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("the smithy-rs commit must be 40 hex digits, got {commit:?}");
        }
        let inputs_sha256 = hash_build_inputs(&root)?;
        Ok(Self {
            given: path.to_path_buf(),
            root,
            commit,
            commit_origin,
            codegen_version,
            inputs_sha256,
            _unpacked: unpacked,
        })
    }
}

/// `git rev-parse HEAD` in `dir`, when it is the root of a git checkout.
fn git_head(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Unpacks a `.tar.gz` into `into`; returns the commit from its pax global header (`comment=`,
/// as `git archive` and GitHub's source archives write it), if any.
fn unpack_tar_gz(archive: &Path, into: &Path) -> anyhow::Result<Option<String>> {
    let mut file = std::fs::File::open(archive)
        .with_context(|| format!("cannot open {}", archive.display()))?;
    let mut magic = [0u8; 2];
    if file.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        bail!(
            "{} is neither a directory nor a gzip file; pass a smithy-rs checkout or its release \
             source archive (.tar.gz)",
            archive.display()
        );
    }
    file.seek(std::io::SeekFrom::Start(0))
        .with_context(|| format!("cannot read {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut commit = None;
    let damaged = |archive: &Path| {
        format!(
            "{} is damaged (truncated or not a tar.gz); download the source archive again",
            archive.display()
        )
    };
    for entry in tar.entries().with_context(|| damaged(archive))? {
        let mut entry = entry.with_context(|| damaged(archive))?;
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .with_context(|| damaged(archive))?;
            commit = text
                .lines()
                .filter_map(|line| line.split_once(' ').map(|(_, record)| record))
                .find_map(|record| record.strip_prefix("comment="))
                .map(str::to_string);
            continue;
        }
        entry.unpack_in(into).with_context(|| damaged(archive))?;
    }
    Ok(commit)
}

/// The one directory an archive unpacked into (`smithy-rs-<tag>/`), or `dir` itself when the
/// archive had no top directory.
fn single_top_directory(dir: &Path) -> anyhow::Result<PathBuf> {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    match entries.as_slice() {
        [only] if only.path().is_dir() => Ok(only.path()),
        [] => bail!("the archive is empty"),
        _ => Ok(dir.to_path_buf()),
    }
}

/// `key=value` lines of a Java properties file (no continuations; enough for gradle.properties).
fn read_properties(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect())
}

/// sha256 over every build input: each file's relative path and the sha256 of its contents, in
/// path order, plus the runtime crates' manifests (their versions go into the generator).
fn hash_build_inputs(root: &Path) -> anyhow::Result<String> {
    let mut files = BTreeMap::new();
    for input in BUILD_INPUTS {
        collect_files(root, &root.join(input), &mut files)?;
    }
    for runtime in ["rust-runtime", "aws/rust-runtime"] {
        let dir = root.join(runtime);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let manifest = entry?.path().join("Cargo.toml");
            if manifest.is_file() {
                collect_files(root, &manifest, &mut files)?;
            }
        }
    }
    let mut listing = Vec::new();
    for (relative, sha) in &files {
        listing.extend_from_slice(relative.as_bytes());
        listing.push(0);
        listing.extend_from_slice(sha.as_bytes());
        listing.push(b'\n');
    }
    Ok(sha256_hex(&listing))
}

fn collect_files(
    root: &Path,
    path: &Path,
    files: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(());
    };
    if metadata.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            collect_files(root, &entry?.path(), files)?;
        }
    } else {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let relative = path
            .strip_prefix(root)
            .expect("collected under root")
            .to_string_lossy()
            .replace('\\', "/");
        files.insert(relative, sha256_hex(&bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "56ee88c5c6edd967967656f1e29f46b229105e79";

    fn tree(dir: &Path, codegen_version: &str) -> PathBuf {
        let root = dir.join("smithy-rs");
        std::fs::create_dir_all(root.join("codegen-core/src/main/kotlin")).unwrap();
        std::fs::write(
            root.join("gradle.properties"),
            format!("rust.msrv=1.94.1\ncodegenVersion={codegen_version}\n"),
        )
        .unwrap();
        std::fs::write(root.join("codegen-core/src/main/kotlin/A.kt"), "class A\n").unwrap();
        root
    }

    #[test]
    fn a_directory_needs_a_commit_and_the_pinned_version() {
        let dir = tempfile::tempdir().unwrap();
        let root = tree(dir.path(), "0.1.25");
        let err = GeneratorSource::open(&root, None, "0.1.25", dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("--generator-commit"), "{err:#}");
        let source = GeneratorSource::open(&root, Some(COMMIT), "0.1.25", dir.path()).unwrap();
        assert_eq!(source.commit, COMMIT);
        assert_eq!(source.codegen_version, "0.1.25");
        let err = GeneratorSource::open(&root, Some(COMMIT), "0.1.24", dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("is smithy-rs codegenVersion 0.1.25, but codegen/gradle.properties pins smithyRsCodegenVersion=0.1.24"),
            "{err:#}"
        );
        let err = GeneratorSource::open(&root, Some("abc"), "0.1.25", dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("40 hex digits"), "{err:#}");
    }

    #[test]
    fn the_inputs_hash_follows_the_sources_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = tree(dir.path(), "0.1.25");
        let first = hash_build_inputs(&root).unwrap();
        std::fs::write(root.join("unrelated.md"), "x").unwrap();
        assert_eq!(hash_build_inputs(&root).unwrap(), first);
        std::fs::write(root.join("codegen-core/src/main/kotlin/A.kt"), "class B\n").unwrap();
        assert_ne!(hash_build_inputs(&root).unwrap(), first);
    }

    #[test]
    fn an_archive_gives_its_commit_and_its_top_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = tree(dir.path(), "0.1.25");
        let archive = dir.path().join("src.tar.gz");
        let status = Command::new("tar")
            .arg("-C")
            .arg(root.parent().unwrap())
            .args(["--format=pax", "--pax-option"])
            .arg(format!(
                "globexthdr.name=pax_global_header,comment={COMMIT}"
            ))
            .arg("-czf")
            .arg(&archive)
            .arg("smithy-rs")
            .status()
            .unwrap();
        assert!(status.success());
        let scratch = dir.path().join("scratch");
        let source = GeneratorSource::open(&archive, None, "0.1.25", &scratch).unwrap();
        assert_eq!(source.commit, COMMIT);
        assert_eq!(source.commit_origin, "the archive's pax header");
        assert!(
            source.root.ends_with("smithy-rs"),
            "{}",
            source.root.display()
        );
        assert_eq!(source.inputs_sha256, hash_build_inputs(&root).unwrap());
    }
}
