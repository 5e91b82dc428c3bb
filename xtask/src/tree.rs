//! File trees as data: snapshot, hash, compare, copy, and swap into place atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::lock::sha256_hex;

/// Every file under a directory, keyed by its `/`-separated relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    files: BTreeMap<String, Vec<u8>>,
}

impl Tree {
    /// Reads every file under `root`; an absent `root` is an empty tree.
    pub fn read(root: &Path) -> anyhow::Result<Self> {
        let mut tree = Tree::default();
        if root.exists() {
            tree.read_dir(root, root)?;
        }
        Ok(tree)
    }

    fn read_dir(&mut self, root: &Path, dir: &Path) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot list {}", dir.display()))?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            let kind = entry
                .file_type()
                .with_context(|| format!("cannot stat {}", path.display()))?;
            if kind.is_dir() {
                self.read_dir(root, &path)?;
            } else {
                let relative = path
                    .strip_prefix(root)
                    .expect("read_dir yields children of root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                self.files.insert(relative, bytes);
            }
        }
        Ok(())
    }

    /// The files, by relative path.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    /// True when there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A hash of every path and content; equal trees have equal hashes.
    pub fn hash(&self) -> String {
        let mut manifest = String::new();
        for (path, bytes) in &self.files {
            let _ = writeln!(manifest, "{}  {path}", sha256_hex(bytes));
        }
        sha256_hex(manifest.as_bytes())
    }

    /// Writes the tree under `root`, which must not exist yet.
    pub fn write(&self, root: &Path) -> anyhow::Result<()> {
        for (path, bytes) in &self.files {
            let target = root.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&target, bytes)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
        Ok(())
    }
}

/// What changed from one tree to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// Files only in the new tree.
    pub added: Vec<String>,
    /// Files in both, with different contents.
    pub changed: Vec<String>,
    /// Files only in the old tree.
    pub removed: Vec<String>,
}

impl TreeDiff {
    /// Compares `old` with `new`.
    pub fn between(old: &Tree, new: &Tree) -> Self {
        let mut diff = TreeDiff::default();
        for (path, bytes) in new.files() {
            match old.files().get(path) {
                None => diff.added.push(path.clone()),
                Some(old_bytes) if old_bytes != bytes => diff.changed.push(path.clone()),
                Some(_) => {}
            }
        }
        diff.removed = old
            .files()
            .keys()
            .filter(|path| !new.files().contains_key(*path))
            .cloned()
            .collect();
        diff
    }

    /// True when the trees are identical.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// A readable report: file lists plus unified diffs of changed text files, at most
    /// `max_lines` lines of diff in all.
    pub fn report(&self, old: &Tree, new: &Tree, max_lines: usize) -> String {
        let mut out = String::new();
        for path in &self.added {
            let _ = writeln!(out, "  added:   {path}");
        }
        for path in &self.removed {
            let _ = writeln!(out, "  removed: {path}");
        }
        for path in &self.changed {
            let _ = writeln!(out, "  changed: {path}");
        }
        let mut budget = max_lines;
        for path in &self.changed {
            if budget == 0 {
                let _ = writeln!(out, "  (diff output truncated)");
                break;
            }
            let (Ok(before), Ok(after)) = (
                std::str::from_utf8(&old.files()[path]),
                std::str::from_utf8(&new.files()[path]),
            ) else {
                let _ = writeln!(out, "--- {path}: binary files differ");
                continue;
            };
            let diff = similar::TextDiff::from_lines(before, after);
            let text = diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("generated/{path}"), &format!("regenerated/{path}"))
                .to_string();
            for line in text.lines().take(budget) {
                let _ = writeln!(out, "{line}");
            }
            budget = budget.saturating_sub(text.lines().count());
        }
        out
    }
}

/// Puts `new_dir` at `target` so that `target` is at every moment either the old complete tree
/// or the new complete tree. The old tree is moved to `backup` (returned as `Some`) so the
/// caller can restore it with [`restore`] if a later step fails.
pub fn swap_in(new_dir: &Path, target: &Path, backup: &Path) -> anyhow::Result<Option<PathBuf>> {
    let had_old = target.exists();
    if had_old {
        if backup.exists() {
            std::fs::remove_dir_all(backup)
                .with_context(|| format!("cannot remove {}", backup.display()))?;
        }
        std::fs::rename(target, backup)
            .with_context(|| format!("cannot move {} to {}", target.display(), backup.display()))?;
    }
    if let Err(err) = std::fs::rename(new_dir, target) {
        if had_old {
            let _ = std::fs::rename(backup, target);
        }
        return Err(err)
            .with_context(|| format!("cannot move {} to {}", new_dir.display(), target.display()));
    }
    Ok(had_old.then(|| backup.to_path_buf()))
}

/// Undoes [`swap_in`]: removes `target` and moves `backup` (if any) back.
pub fn restore(target: &Path, backup: Option<&Path>) -> anyhow::Result<()> {
    if target.exists() {
        std::fs::remove_dir_all(target)
            .with_context(|| format!("cannot remove {}", target.display()))?;
    }
    if let Some(backup) = backup {
        std::fs::rename(backup, target).with_context(|| {
            format!(
                "cannot move {} back to {}",
                backup.display(),
                target.display()
            )
        })?;
    }
    Ok(())
}

/// Writes `contents` to `path` through a temporary sibling and a rename.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("xtask-tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        Tree {
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn diff_lists_added_changed_removed() {
        let old = tree(&[("a.rs", "1\n"), ("b.rs", "x\n"), ("c.rs", "same\n")]);
        let new = tree(&[("a.rs", "2\n"), ("c.rs", "same\n"), ("d.rs", "new\n")]);
        let diff = TreeDiff::between(&old, &new);
        assert_eq!(diff.added, ["d.rs"]);
        assert_eq!(diff.changed, ["a.rs"]);
        assert_eq!(diff.removed, ["b.rs"]);
        let report = diff.report(&old, &new, 100);
        assert!(report.contains("-1") && report.contains("+2"), "{report}");
        assert!(TreeDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn hash_depends_on_paths_and_contents() {
        let a = tree(&[("a", "1")]);
        assert_eq!(a.hash(), tree(&[("a", "1")]).hash());
        assert_ne!(a.hash(), tree(&[("b", "1")]).hash());
        assert_ne!(a.hash(), tree(&[("a", "2")]).hash());
    }

    #[test]
    fn swap_and_restore_keep_a_complete_tree() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("crate");
        tree(&[("old.rs", "old")]).write(&target).unwrap();
        let new = dir.path().join("new");
        tree(&[("new.rs", "new")]).write(&new).unwrap();
        let backup = swap_in(&new, &target, &dir.path().join("backup")).unwrap();
        assert!(target.join("new.rs").exists() && !target.join("old.rs").exists());
        restore(&target, backup.as_deref()).unwrap();
        assert_eq!(Tree::read(&target).unwrap(), tree(&[("old.rs", "old")]));
    }

    #[test]
    fn reading_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let original = tree(&[("src/lib.rs", "pub fn f() {}"), ("Cargo.toml", "[package]")]);
        original.write(&dir.path().join("t")).unwrap();
        assert_eq!(Tree::read(&dir.path().join("t")).unwrap(), original);
        assert!(Tree::read(&dir.path().join("missing")).unwrap().is_empty());
    }
}
