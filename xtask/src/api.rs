//! The public API of a crate as a set of item paths, to report what a regeneration added or
//! removed (`crate::types::error::AccessDeniedException`, `crate::Client::join_storage_session`).
//!
//! It reads the crate's sources with `syn` and follows the file layout of `mod` declarations.
//! It lists items by name only (signature changes show up in the file diff instead) and does not
//! resolve re-exports; both are enough for a regeneration summary.

use std::collections::BTreeSet;

use crate::tree::Tree;

/// Public item paths declared in the crate whose files are `tree` (a crate root with `src/`).
pub fn public_items(tree: &Tree) -> BTreeSet<String> {
    let mut items = BTreeSet::new();
    if let Some(source) = tree.files().get("src/lib.rs") {
        visit_file(tree, source, "src", "crate", &mut items);
    }
    items
}

/// Items in `new` and not in `old`, and the other way round.
pub fn diff(old: &BTreeSet<String>, new: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    (
        new.difference(old).cloned().collect(),
        old.difference(new).cloned().collect(),
    )
}

fn visit_file(tree: &Tree, source: &[u8], dir: &str, path: &str, items: &mut BTreeSet<String>) {
    let Ok(text) = std::str::from_utf8(source) else {
        return;
    };
    let Ok(file) = syn::parse_file(text) else {
        items.insert(format!("{path} (unparsable source)"));
        return;
    };
    visit_items(tree, &file.items, dir, path, items);
}

fn visit_items(
    tree: &Tree,
    list: &[syn::Item],
    dir: &str,
    path: &str,
    items: &mut BTreeSet<String>,
) {
    for item in list {
        match item {
            syn::Item::Mod(module) if is_public(&module.vis) => {
                let name = module.ident.to_string();
                let child = format!("{path}::{name}");
                items.insert(format!("{child} (mod)"));
                let child_dir = format!("{dir}/{name}");
                if let Some((_, inline)) = &module.content {
                    visit_items(tree, inline, &child_dir, &child, items);
                } else if let Some(source) = tree
                    .files()
                    .get(&format!("{dir}/{name}.rs"))
                    .or_else(|| tree.files().get(&format!("{dir}/{name}/mod.rs")))
                {
                    visit_file(tree, source, &child_dir, &child, items);
                }
            }
            syn::Item::Struct(s) if is_public(&s.vis) => {
                items.insert(format!("{path}::{}", s.ident));
            }
            syn::Item::Enum(e) if is_public(&e.vis) => {
                items.insert(format!("{path}::{}", e.ident));
                for variant in &e.variants {
                    items.insert(format!("{path}::{}::{}", e.ident, variant.ident));
                }
            }
            syn::Item::Fn(f) if is_public(&f.vis) => {
                items.insert(format!("{path}::{}()", f.sig.ident));
            }
            syn::Item::Trait(t) if is_public(&t.vis) => {
                items.insert(format!("{path}::{} (trait)", t.ident));
            }
            syn::Item::Type(t) if is_public(&t.vis) => {
                items.insert(format!("{path}::{} (type)", t.ident));
            }
            syn::Item::Const(c) if is_public(&c.vis) => {
                items.insert(format!("{path}::{} (const)", c.ident));
            }
            syn::Item::Static(s) if is_public(&s.vis) => {
                items.insert(format!("{path}::{} (static)", s.ident));
            }
            syn::Item::Use(u) if is_public(&u.vis) => {
                let mut names = Vec::new();
                use_names(&u.tree, &mut names);
                for name in names {
                    items.insert(format!("{path}::{name} (re-export)"));
                }
            }
            syn::Item::Impl(block) if block.trait_.is_none() => {
                let syn::Type::Path(self_ty) = block.self_ty.as_ref() else {
                    continue;
                };
                let Some(ty) = self_ty.path.segments.last() else {
                    continue;
                };
                for member in &block.items {
                    if let syn::ImplItem::Fn(f) = member {
                        if is_public(&f.vis) {
                            items.insert(format!("{path}::{}::{}()", ty.ident, f.sig.ident));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn use_names(tree: &syn::UseTree, names: &mut Vec<String>) {
    match tree {
        syn::UseTree::Path(p) => use_names(&p.tree, names),
        syn::UseTree::Name(n) => names.push(n.ident.to_string()),
        syn::UseTree::Rename(r) => names.push(r.rename.to_string()),
        syn::UseTree::Glob(_) => names.push("*".to_string()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_names(t, names)),
    }
}

fn is_public(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let target = dir.path().join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, text).unwrap();
        }
        Tree::read(dir.path()).unwrap()
    }

    #[test]
    fn follows_modules_and_lists_public_items_only() {
        let crate_tree = tree(&[
            ("src/lib.rs", "pub mod types; mod private; pub use types::Thing; pub struct Client; impl Client { pub fn send(&self) {} fn hidden(&self) {} }"),
            ("src/types.rs", "pub struct Thing; pub enum Kind { A, B } pub(crate) struct Hidden; pub mod error { pub struct E; }"),
            ("src/private.rs", "pub struct NotReachable;"),
        ]);
        let items = public_items(&crate_tree);
        let expected = [
            "crate::Client",
            "crate::Client::send()",
            "crate::Thing (re-export)",
            "crate::types (mod)",
            "crate::types::Kind",
            "crate::types::Kind::A",
            "crate::types::Kind::B",
            "crate::types::Thing",
            "crate::types::error (mod)",
            "crate::types::error::E",
        ];
        assert_eq!(
            items.iter().map(String::as_str).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn diff_reports_added_and_removed() {
        let old: BTreeSet<String> = ["a", "b"].map(String::from).into();
        let new: BTreeSet<String> = ["b", "c"].map(String::from).into();
        assert_eq!(
            diff(&old, &new),
            (vec!["c".to_string()], vec!["a".to_string()])
        );
    }
}
