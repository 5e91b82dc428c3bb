//! Where things live in the workspace.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The generator's own name for the crate, AWS's: what `regen` produces when neither
/// `--crate-name` nor the lock names another. crates.io's `aws-sdk-kinesisvideowebrtcstorage`
/// belongs to AWS, so a crate we publish carries another name (see [`crate::package`]).
pub const AWS_CRATE_NAME: &str = "aws-sdk-kinesisvideowebrtcstorage";
/// The name hand-written crates use for the generated crate in Rust code
/// (`aws_sdk_kinesisvideowebrtcstorage::Client`): the key of its `[workspace.dependencies]` entry,
/// which renames whatever package regen produced (`package = "..."`) to it.
pub const DEPENDENCY_KEY: &str = "aws-sdk-kinesisvideowebrtcstorage";
/// Shape id of the service the generator is run for.
pub const SERVICE_SHAPE_ID: &str =
    "com.amazonaws.kinesisvideowebrtcstorage#AWSAcuityRoutingServiceLambda";
/// The only service version this project generates.
pub const SERVICE_VERSION: &str = "2018-05-10";
/// The smithy-build projection name (the SDK's module name for the service).
pub const PROJECTION: &str = "kinesisvideowebrtcstorage";
/// Maven coordinates (group, artifact) of the published model.
pub const MODEL_ARTIFACT: (&str, &str) =
    ("software.amazon.api.models", "kinesis-video-webrtc-storage");
/// File name of the model under `model/`.
pub const MODEL_FILE_NAME: &str = "kinesis-video-webrtc-storage-2018-05-10.json";

/// Paths of one checkout of this workspace.
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
}

impl Project {
    /// The workspace this xtask belongs to, or `KVS_XTASK_PROJECT_ROOT` when set (tests run
    /// regen against scratch copies of the workspace).
    pub fn locate() -> anyhow::Result<Self> {
        let root = match std::env::var_os("KVS_XTASK_PROJECT_ROOT") {
            Some(root) => PathBuf::from(root),
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("xtask/ has no parent directory")?
                .to_path_buf(),
        };
        Ok(Self::at(root))
    }

    /// A workspace rooted at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `model/`.
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    /// The locked model file.
    pub fn model_file(&self) -> PathBuf {
        self.model_dir().join(MODEL_FILE_NAME)
    }

    /// The model lock file.
    pub fn model_lock(&self) -> PathBuf {
        self.model_dir().join("model.lock.json")
    }

    /// `codegen/`, the Gradle build.
    pub fn codegen_dir(&self) -> PathBuf {
        self.root.join("codegen")
    }

    /// Where the Gradle build leaves the generator's output.
    pub fn codegen_output(&self) -> PathBuf {
        self.codegen_dir()
            .join("build/smithy")
            .join(PROJECTION)
            .join("rust-client-codegen")
    }

    /// `generated/`.
    pub fn generated_dir(&self) -> PathBuf {
        self.root.join("generated")
    }

    /// The generated crate called `name` (its directory under `generated/` is its package name).
    pub fn generated_crate(&self, name: &str) -> PathBuf {
        self.generated_dir().join(name)
    }

    /// The workspace manifest (`Cargo.toml` at the root).
    pub fn workspace_manifest(&self) -> PathBuf {
        self.root.join("Cargo.toml")
    }

    /// Cargo's target directory for this workspace: `$CARGO_TARGET_DIR`, else `target/`.
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                if dir.is_absolute() {
                    dir
                } else {
                    self.root.join(dir)
                }
            }
            None => self.root.join("target"),
        }
    }

    /// The stamp that records what produced the generated crate.
    pub fn stamp_file(&self) -> PathBuf {
        self.generated_dir().join("regen-stamp.json")
    }

    /// Scratch space for swapping the generated crate (excluded from the workspace).
    pub fn staging_dir(&self) -> PathBuf {
        self.generated_dir().join(".staging")
    }
}
