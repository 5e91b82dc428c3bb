//! `generated/regen-stamp.json`: what produced the committed generated crate.
//!
//! It lives next to the crate, not in it, so the crate stays byte-for-byte generator output. It
//! holds no timestamps, so that regeneration is reproducible; `regen --check` and the workspace
//! tests compare it with the tree to catch hand edits even where no JVM is available.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::tree::Tree;

/// The stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamp {
    /// Says how the crate was made and how to remake it.
    pub generated_by: String,
    /// The generated crate's directory name.
    pub crate_dir: String,
    /// sha256 of the model it was generated from (equals `model/model.lock.json`'s).
    pub model_sha256: String,
    /// smithy-rs codegen release.
    pub smithy_rs_codegen_version: String,
    /// smithy release.
    pub smithy_version: String,
    /// [`Tree::hash`] of the generated crate.
    pub tree_sha256: String,
}

/// What the stamp's `generatedBy` says.
pub const GENERATED_BY: &str =
    "cargo xtask regen (do not edit generated/ by hand; change model/ or codegen/ and rerun)";

impl Stamp {
    /// Reads the stamp; `Ok(None)` when there is none (nothing was generated yet).
    pub fn read(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is not a valid regen stamp", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The stamp as written to disk.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a stamp always serializes");
        text.push('\n');
        text
    }

    /// Fails unless `crate_tree` is exactly the tree this stamp describes.
    pub fn verify_tree(&self, crate_tree: &Tree) -> anyhow::Result<()> {
        let actual = crate_tree.hash();
        if actual != self.tree_sha256 {
            bail!(
                "generated/{} was edited after generation (tree hash {actual}, stamp says {}); \
                 restore it with `git checkout generated/` and make the change in model/ or \
                 codegen/, then run `cargo xtask regen`",
                self.crate_dir,
                self.tree_sha256
            );
        }
        Ok(())
    }
}
