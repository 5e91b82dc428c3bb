//! `model/model.lock.json`: where the committed model came from, its version and its sha256.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::package::CratePackage;
use crate::project::{MODEL_FILE_NAME, SERVICE_SHAPE_ID, SERVICE_VERSION};

/// Where a locked model came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ModelSourceRecord {
    /// A Maven artifact.
    #[serde(rename_all = "camelCase")]
    Maven {
        /// Repository base URL it was downloaded from.
        repository: String,
        /// `group:artifact:version`.
        coordinates: String,
        /// The artifact version.
        version: String,
        /// sha256 of the downloaded jar.
        jar_sha256: String,
    },
    /// A URL.
    Url {
        /// The URL.
        url: String,
    },
    /// A local file: its path relative to the workspace root when it lies inside the
    /// workspace, else its file name alone (no machine-local paths in the lock; the sha256 says
    /// which file it was).
    File {
        /// The path.
        path: String,
    },
}

impl ModelSourceRecord {
    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            ModelSourceRecord::Maven {
                repository,
                coordinates,
                ..
            } => format!("maven {coordinates} ({repository})"),
            ModelSourceRecord::Url { url } => format!("url {url}"),
            ModelSourceRecord::File { path } => format!("file {path}"),
        }
    }

    /// The model's version: the artifact version for Maven sources; URLs and files carry none
    /// (their provenance is the URL or path, and the sha256).
    pub fn version(&self) -> Option<&str> {
        match self {
            ModelSourceRecord::Maven { version, .. } => Some(version),
            _ => None,
        }
    }
}

/// The lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelLock {
    /// Shape id of the service.
    pub service: String,
    /// The service's API version.
    pub service_version: String,
    /// sha256 of the model file.
    pub sha256: String,
    /// Where it came from.
    pub source: ModelSourceRecord,
    /// Free text kept across regenerations when the source is the same (provenance details).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The generated crate's package name and version (`--crate-name`, `--crate-version`);
    /// absent: the generator's defaults, AWS's name and the version pinned in
    /// `codegen/gradle.properties`.
    #[serde(rename = "crate", default, skip_serializing_if = "Option::is_none")]
    pub krate: Option<CratePackage>,
    /// What the generator reads instead of the model file, and why (absent in locks written
    /// before transformations were recorded; `regen --check` then asks for a regeneration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_input: Option<GeneratorInput>,
}

/// What was changed, as recorded in `model/model.lock.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedTransform {
    /// Which transformation.
    pub name: String,
    /// Why.
    pub why: String,
    /// The `documentation` of every endpoint test case it removed.
    pub removed_test_cases: Vec<String>,
}

/// How the model the generator reads differs from the locked model file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorInput {
    /// sha256 of the model the generator reads (equals the model's when nothing was changed).
    pub sha256: String,
    /// Changes xtask makes to the model file before Smithy reads it (see
    /// `xtask/src/model_transform.rs`).
    pub model_transforms: Vec<AppliedTransform>,
    /// Smithy projection transforms in `codegen/smithy-build.json`, applied while building.
    pub projection_transforms: Vec<String>,
}

impl ModelLock {
    /// A lock for `json` pulled from `source`.
    pub fn new(json: &[u8], source: ModelSourceRecord) -> Self {
        Self {
            service: SERVICE_SHAPE_ID.to_string(),
            service_version: SERVICE_VERSION.to_string(),
            sha256: sha256_hex(json),
            source,
            note: None,
            krate: None,
            generator_input: None,
        }
    }

    /// Reads a lock file; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is not a valid model lock", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The lock as written to disk (stable key order, trailing newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a lock always serializes");
        text.push('\n');
        text
    }

    /// Fails unless `json` is the locked model.
    pub fn verify(&self, json: &[u8]) -> anyhow::Result<()> {
        let actual = sha256_hex(json);
        if actual != self.sha256 {
            bail!(
                "the model's sha256 is {actual} but the lock records {}; to generate from the \
                 edited model run `cargo xtask regen --model-file model/{MODEL_FILE_NAME}`, or \
                 restore it with `git checkout model/`",
                self.sha256
            );
        }
        Ok(())
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
