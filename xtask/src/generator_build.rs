//! Building the smithy-rs generator from a [`GeneratorSource`] once, and reusing the jars.
//!
//! The jars are cached per user (not per checkout, so fresh clones share them) under a key made
//! of the source's build inputs, its commit, the codegen version and the build script: a second
//! `regen` with the same source does not recompile, and any change to what the build reads does.
//! A build writes into a scratch sibling and is renamed into place only when complete, so an
//! interrupted build never leaves a half cache entry.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::generator_source::GeneratorSource;
use crate::gradle::GradleRun;
use crate::maven::Repositories;

/// The jars the build produces, in the order they go on the generator's classpath.
pub const JARS: [&str; 5] = [
    "codegen-aws-sdk.jar",
    "codegen-client.jar",
    "codegen-core.jar",
    "rust-runtime.jar",
    "aws-rust-runtime.jar",
];

/// The build script whose content is part of the cache key (relative to `codegen/`).
pub const BUILD_SCRIPT: &str = "generator-from-source.gradle";

/// A generator built from source, ready to run.
#[derive(Debug, Clone)]
pub struct BuiltGenerator {
    /// Directory holding [`JARS`].
    pub jars_dir: PathBuf,
    /// True when the jars came from the cache.
    pub cached: bool,
    /// Seconds the build took (0 when cached).
    pub build_seconds: f64,
}

/// What a cache entry records about itself (`built.json`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheRecord {
    codegen_version: String,
    commit: String,
    inputs_sha256: String,
    build_script_sha256: String,
    built_from: String,
}

/// The per-user cache directory: `$KVS_XTASK_CACHE_DIR`, else `$XDG_CACHE_HOME/kvs-webrtc-rs`,
/// else `$HOME/.cache/kvs-webrtc-rs`, else `codegen/build/cache`.
pub fn cache_root(codegen_dir: &Path) -> PathBuf {
    let from_env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = from_env("KVS_XTASK_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = from_env("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("kvs-webrtc-rs");
    }
    if let Some(home) = from_env("HOME") {
        return PathBuf::from(home).join(".cache/kvs-webrtc-rs");
    }
    codegen_dir.join("build/cache")
}

/// Returns the cached jars for `source`, building them first when the cache has none.
pub fn ensure_built(
    source: &GeneratorSource,
    gradle: &Path,
    codegen_dir: &Path,
    repos: &Repositories,
    verbose: bool,
) -> anyhow::Result<BuiltGenerator> {
    let script = std::fs::read(codegen_dir.join(BUILD_SCRIPT))
        .with_context(|| format!("cannot read codegen/{BUILD_SCRIPT}"))?;
    let record = CacheRecord {
        codegen_version: source.codegen_version.clone(),
        commit: source.commit.clone(),
        inputs_sha256: source.inputs_sha256.clone(),
        build_script_sha256: crate::lock::sha256_hex(&script),
        built_from: source.given.display().to_string(),
    };
    let entry = cache_root(codegen_dir)
        .join("smithy-rs-generator")
        .join(format!(
            "{}-{}",
            record.codegen_version,
            &cache_key(&record)[..24]
        ));
    if is_complete(&entry) {
        return Ok(BuiltGenerator {
            jars_dir: entry,
            cached: true,
            build_seconds: 0.0,
        });
    }

    let started = Instant::now();
    let partial = entry.with_extension(format!("partial-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot clear {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create the generator cache {}", partial.display()))?;
    let result = GradleRun {
        gradle,
        codegen_dir,
        task: "buildGenerator",
        properties: vec![
            ("generatorSource", source.root.display().to_string()),
            ("generatorJars", partial.display().to_string()),
            ("generatorCommit", source.commit.clone()),
        ],
        repos,
        verbose,
    }
    .run()
    .context("building the smithy-rs generator from source failed; nothing was cached");
    if let Err(err) = result {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(err);
    }
    let record_json = serde_json::to_string_pretty(&record).expect("a record serializes");
    std::fs::write(partial.join("built.json"), record_json)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    if !is_complete(&partial) {
        let _ = std::fs::remove_dir_all(&partial);
        anyhow::bail!(
            "the generator build finished but did not produce {}; see codegen/build/xtask-gradle-buildGenerator.log",
            JARS.join(", ")
        );
    }
    if entry.exists() {
        // Another run finished the same build first; its jars are the same.
        let _ = std::fs::remove_dir_all(&partial);
    } else {
        std::fs::rename(&partial, &entry)
            .with_context(|| format!("cannot move {} to {}", partial.display(), entry.display()))?;
    }
    Ok(BuiltGenerator {
        jars_dir: entry,
        cached: false,
        build_seconds: started.elapsed().as_secs_f64(),
    })
}

fn cache_key(record: &CacheRecord) -> String {
    let mut parts = Vec::new();
    for part in [
        &record.codegen_version,
        &record.commit,
        &record.inputs_sha256,
        &record.build_script_sha256,
    ] {
        parts.extend_from_slice(part.as_bytes());
        parts.push(0);
    }
    crate::lock::sha256_hex(&parts)
}

fn is_complete(dir: &Path) -> bool {
    dir.join("built.json").is_file() && JARS.iter().all(|jar| dir.join(jar).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(commit: &str) -> CacheRecord {
        CacheRecord {
            codegen_version: "0.1.25".into(),
            commit: commit.into(),
            inputs_sha256: "a".into(),
            build_script_sha256: "b".into(),
            built_from: "anywhere".into(),
        }
    }

    #[test]
    fn the_key_covers_the_commit_but_not_where_the_source_was() {
        let mut moved = record("c1");
        moved.built_from = "elsewhere".into();
        assert_eq!(cache_key(&record("c1")), cache_key(&moved));
        assert_ne!(cache_key(&record("c1")), cache_key(&record("c2")));
    }

    #[test]
    fn an_entry_is_complete_only_with_every_jar_and_its_record() {
        let dir = tempfile::tempdir().unwrap();
        for jar in &JARS[..4] {
            std::fs::write(dir.path().join(jar), b"x").unwrap();
        }
        std::fs::write(dir.path().join("built.json"), b"{}").unwrap();
        assert!(!is_complete(dir.path()));
        std::fs::write(dir.path().join(JARS[4]), b"x").unwrap();
        assert!(is_complete(dir.path()));
    }
}
