//! The public API of the generated crate, read from rustdoc's JSON output, and what changed
//! between two generations of it.
//!
//! **Why rustdoc JSON, on the stable toolchain.** rustdoc resolves what the compiler resolves:
//! re-exports through smithy-rs's private modules (`types::error::AccessDeniedException` is
//! declared in `types/error/_access_denied_exception.rs`), the fields and methods of every type,
//! trait impls such as the `From<SdkError<..>>` conversions into `crate::Error`, and every
//! signature with its types spelled out. Text scanning sees none of that reliably. The JSON
//! output is an unstable rustdoc feature; `RUSTC_BOOTSTRAP=1` lets the pinned stable toolchain
//! produce it (this is also how `cargo-semver-checks` gets rustdoc JSON on stable), so no
//! nightly is needed on a fresh machine. Its format is versioned: [`Api::from_json`] names the
//! version it reads and refuses others with that in the message. `cargo-semver-checks` was the
//! other candidate: it reports breaking changes only (no list of what was added, which the
//! summary must give), compiles for minutes before its first use, and needs the same rustdoc
//! JSON anyway.
//!
//! **What is listed.** Every public item under its public path: modules, structs (their public
//! fields), enums (their variants and the variants' fields), unions, traits (their items),
//! functions, inherent methods and associated constants (getters, setters, client methods),
//! trait impls (`impl Debug for X`, `impl From<..> for Error`), type aliases, constants, statics,
//! macros, and re-exports of items from other crates. An item reachable under several public
//! paths is listed under its shortest one and the others are listed as aliases of it. Auto-trait
//! impls (`Send`, `Sync`, ...) are part of their type's entry; blanket impls are left out (they
//! follow from the trait's crate).
//!
//! **How a change is classified.** Removing or changing an item is breaking (a type that only
//! gained auto traits is not). Adding is not, except a field of a struct that callers can build
//! with a literal (no `#[non_exhaustive]`, no private fields), a variant of an enum without
//! `#[non_exhaustive]`, and a required item of a trait.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde_json::Value;

/// The rustdoc JSON format version this module reads (`format_version`, Rust 1.95).
pub const FORMAT_VERSION: u64 = 57;

/// One public item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiItem {
    /// What it is: `struct`, `field`, `method`, `variant`, `impl`, ...
    pub kind: &'static str,
    /// The whole declaration as one line, with its path: what is compared.
    pub signature: String,
    /// The path of the item it belongs to (a field's struct, a method's type), if any.
    pub parent: Option<String>,
    /// For structs: callers can build it with a literal (no `#[non_exhaustive]`, no private
    /// fields). For enums: callers can match it exhaustively (no `#[non_exhaustive]`). For traits:
    /// callers can implement it. Adding to such an item breaks them.
    pub exhaustive: bool,
    /// For trait items: it has no default, so implementors must provide it.
    pub required: bool,
    /// For types: the auto traits it implements (part of `signature`).
    pub auto_traits: BTreeSet<String>,
}

/// A crate's public API: item key (its path, plus the trait for impls) → item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Api {
    items: BTreeMap<String, ApiItem>,
}

impl Api {
    /// The items, by key.
    pub fn items(&self) -> &BTreeMap<String, ApiItem> {
        &self.items
    }

    /// Reads a rustdoc JSON document (of [`FORMAT_VERSION`]).
    pub fn from_json(bytes: &[u8]) -> anyhow::Result<Self> {
        let doc: Value = serde_json::from_slice(bytes).context("rustdoc's output is not JSON")?;
        let version = doc["format_version"].as_u64().unwrap_or(0);
        if version != FORMAT_VERSION {
            bail!(
                "rustdoc wrote JSON format version {version}, but xtask reads version \
                 {FORMAT_VERSION} (the toolchain pinned by rust-version); update \
                 xtask/src/api.rs for the new format or use the pinned toolchain"
            );
        }
        Reader::new(&doc)?.read()
    }

    /// Runs rustdoc (JSON output) on `package` of the workspace at `root` and reads the result.
    /// `target_dir` keeps its build apart from the workspace's (the unstable-options build would
    /// otherwise share and invalidate artifacts).
    pub fn of_package(root: &Path, package: &str, target_dir: &Path) -> anyhow::Result<Self> {
        let json = rustdoc_json(root, package, target_dir)?;
        let bytes =
            std::fs::read(&json).with_context(|| format!("cannot read {}", json.display()))?;
        Self::from_json(&bytes).with_context(|| format!("reading {}", json.display()))
    }
}

/// Runs `cargo rustdoc -p package --lib --all-features` with JSON output on the stable toolchain
/// (`RUSTC_BOOTSTRAP=1`); returns the JSON file.
pub fn rustdoc_json(root: &Path, package: &str, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUSTDOCFLAGS")
        .args([
            "rustdoc",
            "--quiet",
            "--package",
            package,
            "--lib",
            "--all-features",
            "--",
            "-Z",
            "unstable-options",
            "--output-format",
            "json",
        ])
        .output()
        .context("cannot run cargo rustdoc")?;
    if !output.status.success() {
        bail!(
            "cargo rustdoc -p {package} (JSON output) failed ({}):\n{}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 40)
        );
    }
    let json = target_dir
        .join("doc")
        .join(format!("{}.json", package.replace('-', "_")));
    if !json.is_file() {
        bail!(
            "cargo rustdoc -p {package} succeeded but wrote no {}",
            json.display()
        );
    }
    Ok(json)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Walks a rustdoc JSON document from the crate root.
struct Reader<'a> {
    index: &'a serde_json::Map<String, Value>,
    paths: &'a serde_json::Map<String, Value>,
    root: String,
    /// Item id → every public path it is reachable under (relative to the crate root).
    reachable: HashMap<String, Vec<String>>,
    /// External re-exports: path → the external item's path.
    external: BTreeMap<String, String>,
}

impl<'a> Reader<'a> {
    fn new(doc: &'a Value) -> anyhow::Result<Self> {
        let index = doc["index"]
            .as_object()
            .context("rustdoc JSON has no index")?;
        let paths = doc["paths"]
            .as_object()
            .context("rustdoc JSON has no paths")?;
        let root = id_key(&doc["root"]).context("rustdoc JSON has no root")?;
        Ok(Self {
            index,
            paths,
            root,
            reachable: HashMap::new(),
            external: BTreeMap::new(),
        })
    }

    fn item(&self, id: &str) -> Option<&'a Value> {
        self.index.get(id)
    }

    fn read(mut self) -> anyhow::Result<Api> {
        self.find_public_paths();
        let mut api = Api::default();
        // Canonical path per item: the shortest, then the first in order.
        let mut canonical: BTreeMap<String, String> = BTreeMap::new();
        for (id, paths) in &self.reachable {
            let best = paths
                .iter()
                .min_by(|a, b| {
                    a.matches("::")
                        .count()
                        .cmp(&b.matches("::").count())
                        .then(a.cmp(b))
                })
                .expect("at least one path")
                .clone();
            canonical.insert(id.clone(), best);
        }
        let names = Names {
            canonical: &canonical,
            paths: self.paths,
        };
        for (id, path) in &canonical {
            let item = self.item(id).expect("reachable items are in the index");
            self.describe(&mut api, &names, item, path);
            for alias in &self.reachable[id] {
                if alias != path {
                    api.insert(
                        alias.clone(),
                        ApiItem::simple("alias", format!("pub use {path} as {alias}"), None),
                    );
                }
            }
        }
        for (path, target) in &self.external {
            api.insert(
                path.clone(),
                ApiItem::simple(
                    "re-export",
                    format!("pub use {target} as {path} (another crate's item)"),
                    None,
                ),
            );
        }
        Ok(api)
    }

    /// Breadth-first from the root module through public modules and re-exports.
    fn find_public_paths(&mut self) {
        let mut queue = VecDeque::from([(self.root.clone(), String::new())]);
        let mut expanded: BTreeSet<(String, String)> = BTreeSet::new();
        while let Some((module_id, prefix)) = queue.pop_front() {
            if !expanded.insert((module_id.clone(), prefix.clone())) || prefix.len() > 400 {
                continue;
            }
            let Some(module) = self.item(&module_id) else {
                continue;
            };
            let children = module["inner"]["module"]["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for child in children {
                let Some(child_id) = id_key(&child) else {
                    continue;
                };
                let Some(item) = self.item(&child_id) else {
                    continue;
                };
                if item["visibility"] != "public" {
                    continue;
                }
                let inner = &item["inner"];
                if let Some(import) = inner.get("use") {
                    let target = id_key(&import["id"]);
                    let local = target.as_deref().and_then(|id| self.item(id));
                    let name = import["name"].as_str().unwrap_or("_");
                    if import["is_glob"] == true {
                        if let (Some(id), Some(_)) = (target.clone(), local) {
                            queue.push_back((id, prefix.clone()));
                        } else {
                            let path = join(&prefix, "*");
                            self.external
                                .insert(path, import["source"].as_str().unwrap_or("?").into());
                        }
                        continue;
                    }
                    let path = join(&prefix, name);
                    match (target, local) {
                        (Some(id), Some(target_item)) => {
                            self.reach(&id, &path);
                            if target_item["inner"].get("module").is_some() {
                                queue.push_back((id, path));
                            }
                        }
                        (id, _) => {
                            let external = id
                                .and_then(|id| self.paths.get(&id))
                                .and_then(|p| p["path"].as_array())
                                .map(|p| {
                                    p.iter()
                                        .filter_map(Value::as_str)
                                        .collect::<Vec<_>>()
                                        .join("::")
                                })
                                .unwrap_or_else(|| {
                                    import["source"].as_str().unwrap_or("?").to_string()
                                });
                            self.external.insert(path, external);
                        }
                    }
                    continue;
                }
                let Some(name) = item["name"].as_str() else {
                    continue;
                };
                let path = join(&prefix, name);
                self.reach(&child_id, &path);
                if inner.get("module").is_some() {
                    queue.push_back((child_id, path));
                }
            }
        }
    }

    fn reach(&mut self, id: &str, path: &str) {
        let paths = self.reachable.entry(id.to_string()).or_default();
        if !paths.iter().any(|p| p == path) {
            paths.push(path.to_string());
        }
    }

    /// Adds `item` (at `path`) and what belongs to it to `api`.
    fn describe(&self, api: &mut Api, names: &Names<'_>, item: &Value, path: &str) {
        let inner = &item["inner"];
        let non_exhaustive = has_attr(item, "non_exhaustive");
        let marker = if non_exhaustive {
            "#[non_exhaustive] "
        } else {
            ""
        };
        if inner.get("module").is_some() {
            api.insert(
                path.into(),
                ApiItem::simple("mod", format!("mod {path}"), None),
            );
        } else if let Some(s) = inner.get("struct") {
            let generics = names.generics(&s["generics"]);
            let (shape, exhaustive) = match &s["kind"] {
                Value::String(unit) if unit == "unit" => ("unit".to_string(), !non_exhaustive),
                kind => {
                    if let Some(tuple) = kind.get("tuple").and_then(Value::as_array) {
                        let fields: Vec<String> = tuple
                            .iter()
                            .enumerate()
                            .map(|(i, field)| match id_key(field) {
                                Some(id) => {
                                    let ty = self
                                        .item(&id)
                                        .map(|f| names.ty(&f["inner"]["struct_field"]))
                                        .unwrap_or_default();
                                    api.insert(
                                        format!("{path}::{i}"),
                                        ApiItem::simple(
                                            "field",
                                            format!("field {path}::{i}: {ty}"),
                                            Some(path),
                                        ),
                                    );
                                    format!("pub {ty}")
                                }
                                None => "_".to_string(),
                            })
                            .collect();
                        let private = tuple.iter().any(Value::is_null);
                        (
                            format!("tuple({})", fields.join(", ")),
                            !non_exhaustive && !private,
                        )
                    } else {
                        let plain = &kind["plain"];
                        self.named_fields(api, names, &plain["fields"], path);
                        let private = plain["has_stripped_fields"] == true;
                        (
                            if private {
                                "with private fields".to_string()
                            } else {
                                "fields".to_string()
                            },
                            !non_exhaustive && !private,
                        )
                    }
                }
            };
            let autos = self.impls(api, names, &s["impls"], path);
            let mut entry = ApiItem::simple(
                "struct",
                format!(
                    "{marker}struct {path}{generics} ({shape}){}",
                    auto_list(&autos)
                ),
                None,
            );
            entry.exhaustive = exhaustive;
            entry.auto_traits = autos;
            api.insert(path.into(), entry);
        } else if let Some(e) = inner.get("enum") {
            let generics = names.generics(&e["generics"]);
            for variant in e["variants"].as_array().into_iter().flatten() {
                let Some(variant) = id_key(variant).and_then(|id| self.item(&id)) else {
                    continue;
                };
                let name = variant["name"].as_str().unwrap_or("?");
                let shape = self.variant_shape(names, &variant["inner"]["variant"]);
                api.insert(
                    format!("{path}::{name}"),
                    ApiItem::simple(
                        "variant",
                        format!("variant {path}::{name}{shape}"),
                        Some(path),
                    ),
                );
            }
            let autos = self.impls(api, names, &e["impls"], path);
            let mut entry = ApiItem::simple(
                "enum",
                format!("{marker}enum {path}{generics}{}", auto_list(&autos)),
                None,
            );
            entry.exhaustive = !non_exhaustive && e["has_stripped_variants"] != true;
            entry.auto_traits = autos;
            api.insert(path.into(), entry);
        } else if let Some(u) = inner.get("union") {
            let generics = names.generics(&u["generics"]);
            self.named_fields(api, names, &u["fields"], path);
            let autos = self.impls(api, names, &u["impls"], path);
            let mut entry = ApiItem::simple(
                "union",
                format!("union {path}{generics}{}", auto_list(&autos)),
                None,
            );
            entry.auto_traits = autos;
            api.insert(path.into(), entry);
        } else if let Some(t) = inner.get("trait") {
            let generics = names.generics(&t["generics"]);
            let bounds = names.bounds(&t["bounds"]);
            let unsafety = if t["is_unsafe"] == true {
                "unsafe "
            } else {
                ""
            };
            let bounds = if bounds.is_empty() {
                String::new()
            } else {
                format!(": {bounds}")
            };
            for member in t["items"].as_array().into_iter().flatten() {
                let Some(member) = id_key(member).and_then(|id| self.item(&id)) else {
                    continue;
                };
                let (kind, signature, required) = self.member(names, member, path);
                let mut entry = ApiItem::simple(kind, signature, Some(path));
                entry.required = required;
                api.insert(member_key(path, member), entry);
            }
            let mut entry = ApiItem::simple(
                "trait",
                format!("{unsafety}trait {path}{generics}{bounds}"),
                None,
            );
            entry.exhaustive = true;
            api.insert(path.into(), entry);
        } else if inner.get("function").is_some() {
            let (_, signature, _) =
                self.member(names, item, path.rsplit_once("::").map_or("", |p| p.0));
            let signature = signature.replacen("method ", "fn ", 1);
            api.insert(format!("{path}()"), ApiItem::simple("fn", signature, None));
        } else if let Some(alias) = inner.get("type_alias") {
            api.insert(
                path.into(),
                ApiItem::simple(
                    "type",
                    format!(
                        "type {path}{} = {}",
                        names.generics(&alias["generics"]),
                        names.ty(&alias["type"])
                    ),
                    None,
                ),
            );
        } else if let Some(constant) = inner.get("constant") {
            api.insert(
                path.into(),
                ApiItem::simple(
                    "const",
                    format!("const {path}: {}", names.ty(&constant["type"])),
                    None,
                ),
            );
        } else if let Some(s) = inner.get("static") {
            let mutability = if s["is_mutable"] == true { "mut " } else { "" };
            api.insert(
                path.into(),
                ApiItem::simple(
                    "static",
                    format!("static {mutability}{path}: {}", names.ty(&s["type"])),
                    None,
                ),
            );
        } else if inner.get("macro").is_some() || inner.get("proc_macro").is_some() {
            api.insert(
                path.into(),
                ApiItem::simple("macro", format!("macro {path}!"), None),
            );
        } else if let Some(kind) = inner.as_object().and_then(|o| o.keys().next()) {
            api.insert(
                path.into(),
                ApiItem::simple("item", format!("{kind} {path}"), None),
            );
        }
    }

    /// Adds the named fields `fields` (ids) of the struct or union at `path` to `api`.
    fn named_fields(&self, api: &mut Api, names: &Names<'_>, fields: &Value, path: &str) {
        for field in fields.as_array().into_iter().flatten() {
            let Some(field) = id_key(field).and_then(|id| self.item(&id)) else {
                continue;
            };
            let name = field["name"].as_str().unwrap_or("?");
            let ty = names.ty(&field["inner"]["struct_field"]);
            api.insert(
                format!("{path}::{name}"),
                ApiItem::simple("field", format!("field {path}::{name}: {ty}"), Some(path)),
            );
        }
    }

    fn variant_shape(&self, names: &Names<'_>, variant: &Value) -> String {
        let field_type = |id: &Value| {
            id_key(id).and_then(|id| self.item(&id)).map(|f| {
                (
                    f["name"].as_str().unwrap_or("?").to_string(),
                    names.ty(&f["inner"]["struct_field"]),
                )
            })
        };
        match &variant["kind"] {
            Value::String(_) => String::new(),
            kind => {
                if let Some(tuple) = kind.get("tuple").and_then(Value::as_array) {
                    let fields: Vec<String> = tuple
                        .iter()
                        .map(|f| field_type(f).map(|(_, ty)| ty).unwrap_or("_".into()))
                        .collect();
                    format!("({})", fields.join(", "))
                } else {
                    let fields: Vec<String> = kind["struct"]["fields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| field_type(f).map(|(n, ty)| format!("{n}: {ty}")))
                        .collect();
                    let more = if kind["struct"]["has_stripped_fields"] == true {
                        ", .."
                    } else {
                        ""
                    };
                    format!(" {{ {}{more} }}", fields.join(", "))
                }
            }
        }
    }

    /// Adds a type's inherent methods and constants and its trait impls to `api`; returns its
    /// auto traits.
    fn impls(
        &self,
        api: &mut Api,
        names: &Names<'_>,
        impls: &Value,
        owner: &str,
    ) -> BTreeSet<String> {
        let mut autos = BTreeSet::new();
        for id in impls.as_array().into_iter().flatten() {
            let Some(block) = id_key(id).and_then(|id| self.item(&id)) else {
                continue;
            };
            let imp = &block["inner"]["impl"];
            if !imp["blanket_impl"].is_null() {
                continue;
            }
            let negative = imp["is_negative"] == true;
            if imp["is_synthetic"] == true {
                if !negative {
                    if let Some(name) = imp["trait"]["path"].as_str() {
                        autos.insert(last_segment(name).to_string());
                    }
                }
                continue;
            }
            if imp["trait"].is_null() {
                for member in imp["items"].as_array().into_iter().flatten() {
                    let Some(member) = id_key(member).and_then(|id| self.item(&id)) else {
                        continue;
                    };
                    if member["visibility"] != "public" {
                        continue;
                    }
                    let (kind, signature, _) = self.member(names, member, owner);
                    api.insert(
                        member_key(owner, member),
                        ApiItem::simple(kind, signature, Some(owner)),
                    );
                }
                continue;
            }
            let generics = names.generics(&imp["generics"]);
            let bang = if negative { "!" } else { "" };
            let trait_ = names.path(&imp["trait"]);
            let mut assoc = Vec::new();
            for member in imp["items"].as_array().into_iter().flatten() {
                let Some(member) = id_key(member).and_then(|id| self.item(&id)) else {
                    continue;
                };
                if let Some(ty) = member["inner"].get("assoc_type") {
                    if !ty["type"].is_null() {
                        assoc.push(format!(
                            "type {} = {}",
                            member["name"].as_str().unwrap_or("?"),
                            names.ty(&ty["type"])
                        ));
                    }
                }
            }
            let assoc = if assoc.is_empty() {
                String::new()
            } else {
                format!(" {{ {} }}", assoc.join("; "))
            };
            let for_ = names.ty(&imp["for"]);
            // rustdoc also lists `impl From<Owner> for Other` among Owner's impls; it is
            // listed once, under the type it is for.
            let own = format!("crate::{owner}");
            if for_ != own && !for_.starts_with(&format!("{own}<")) {
                continue;
            }
            let signature = format!("impl{generics} {bang}{trait_} for {for_}{assoc}");
            api.insert(
                format!("{owner} impl {bang}{trait_}"),
                ApiItem::simple("impl", signature, Some(owner)),
            );
        }
        autos
    }

    /// A method, associated constant or associated type of `owner`: (kind, signature, required).
    fn member(
        &self,
        names: &Names<'_>,
        member: &Value,
        owner: &str,
    ) -> (&'static str, String, bool) {
        let name = member["name"].as_str().unwrap_or("?");
        let inner = &member["inner"];
        let path = join(owner, name);
        if let Some(f) = inner.get("function") {
            let header = &f["header"];
            let mut quals = String::new();
            for (flag, word) in [
                ("is_const", "const "),
                ("is_async", "async "),
                ("is_unsafe", "unsafe "),
            ] {
                if header[flag] == true {
                    quals.push_str(word);
                }
            }
            let sig = &f["sig"];
            let inputs: Vec<String> = sig["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|input| {
                    let arg = input[0].as_str().unwrap_or("_");
                    let ty = &input[1];
                    if arg == "self" {
                        match names.ty(ty).as_str() {
                            "Self" => "self".to_string(),
                            "&Self" => "&self".to_string(),
                            "&mut Self" => "&mut self".to_string(),
                            other => format!("self: {other}"),
                        }
                    } else {
                        format!("{arg}: {}", names.ty(ty))
                    }
                })
                .collect();
            let output = if sig["output"].is_null() {
                String::new()
            } else {
                format!(" -> {}", names.ty(&sig["output"]))
            };
            let generics = names.generics(&f["generics"]);
            let wheres = names.where_clause(&f["generics"]);
            let required = f["has_body"] == false;
            (
                "method",
                format!(
                    "method {quals}{path}{generics}({}){output}{wheres}",
                    inputs.join(", ")
                ),
                required,
            )
        } else if let Some(c) = inner.get("assoc_const") {
            let required = c["value"].is_null();
            (
                "assoc const",
                format!("const {path}: {}", names.ty(&c["type"])),
                required,
            )
        } else if let Some(c) = inner.get("constant") {
            (
                "assoc const",
                format!("const {path}: {}", names.ty(&c["type"])),
                false,
            )
        } else if let Some(t) = inner.get("assoc_type") {
            let required = t["type"].is_null();
            let bounds = names.bounds(&t["bounds"]);
            let bounds = if bounds.is_empty() {
                String::new()
            } else {
                format!(": {bounds}")
            };
            ("assoc type", format!("type {path}{bounds}"), required)
        } else {
            ("item", format!("item {path}"), false)
        }
    }
}

impl Api {
    fn insert(&mut self, key: String, item: ApiItem) {
        self.items.insert(key, item);
    }
}

impl ApiItem {
    fn simple(kind: &'static str, signature: String, parent: Option<&str>) -> Self {
        Self {
            kind,
            signature,
            parent: parent.map(str::to_string),
            exhaustive: false,
            required: false,
            auto_traits: BTreeSet::new(),
        }
    }
}

/// Names of the standard prelude, written without their path (`Option`, `impl Into<String>`).
const PRELUDE: &[&str] = &[
    "Option",
    "Result",
    "String",
    "Vec",
    "Box",
    "Send",
    "Sync",
    "Sized",
    "Unpin",
    "Into",
    "From",
    "AsRef",
    "AsMut",
    "Clone",
    "Copy",
    "Default",
    "Eq",
    "PartialEq",
    "Ord",
    "PartialOrd",
    "Iterator",
    "IntoIterator",
    "Fn",
    "FnMut",
    "FnOnce",
    "Drop",
    "ToString",
    "ToOwned",
];

/// Renders types and paths of one document.
struct Names<'a> {
    canonical: &'a BTreeMap<String, String>,
    paths: &'a serde_json::Map<String, Value>,
}

impl Names<'_> {
    /// A path to an item: its canonical public path for this crate's items, the full path for
    /// others' (`core::option::Option` is written `Option` for the common prelude types).
    fn item_path(&self, id: &Value, written: &str) -> String {
        if let Some(id) = id_key(id) {
            if let Some(path) = self.canonical.get(&id) {
                return format!("crate::{path}");
            }
            if let Some(segments) = self.paths.get(&id).and_then(|p| p["path"].as_array()) {
                let full: Vec<&str> = segments.iter().filter_map(Value::as_str).collect();
                if let Some(last) = full.last() {
                    if PRELUDE.contains(last)
                        && matches!(full.first(), Some(&"core" | &"alloc" | &"std"))
                    {
                        return (*last).to_string();
                    }
                }
                let crate_local = self.paths[&id]["crate_id"] == 0;
                return if crate_local {
                    format!("crate::{}", full[1..].join("::"))
                } else {
                    full.join("::")
                };
            }
        }
        written.trim_start_matches("$crate::").to_string()
    }

    /// `Path<Args>` of a `resolved_path` or trait reference.
    fn path(&self, path: &Value) -> String {
        let name = self.item_path(&path["id"], path["path"].as_str().unwrap_or("?"));
        format!("{name}{}", self.args(&path["args"]))
    }

    fn args(&self, args: &Value) -> String {
        if args.is_null() {
            return String::new();
        }
        if let Some(angle) = args.get("angle_bracketed") {
            let mut parts: Vec<String> = angle["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|arg| {
                    if let Some(ty) = arg.get("type") {
                        self.ty(ty)
                    } else if let Some(lifetime) = arg.get("lifetime") {
                        lifetime.as_str().unwrap_or("'_").to_string()
                    } else if let Some(constant) = arg.get("const") {
                        constant["expr"].as_str().unwrap_or("_").to_string()
                    } else {
                        "_".to_string()
                    }
                })
                .collect();
            for constraint in angle["constraints"].as_array().into_iter().flatten() {
                let name = constraint["name"].as_str().unwrap_or("?");
                let binding = &constraint["binding"];
                if let Some(eq) = binding.get("equality") {
                    let value = eq.get("type").map(|t| self.ty(t)).unwrap_or_default();
                    parts.push(format!("{name} = {value}"));
                } else if let Some(bounds) = binding.get("constraint") {
                    parts.push(format!("{name}: {}", self.bounds(bounds)));
                }
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!("<{}>", parts.join(", "))
            }
        } else if let Some(paren) = args.get("parenthesized") {
            let inputs: Vec<String> = paren["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| self.ty(t))
                .collect();
            let output = if paren["output"].is_null() {
                String::new()
            } else {
                format!(" -> {}", self.ty(&paren["output"]))
            };
            format!("({}){output}", inputs.join(", "))
        } else {
            "<..>".to_string()
        }
    }

    fn ty(&self, ty: &Value) -> String {
        let Some((kind, value)) = ty.as_object().and_then(|o| o.iter().next()) else {
            return ty.as_str().unwrap_or("?").to_string();
        };
        match kind.as_str() {
            "resolved_path" => self.path(value),
            "generic" | "primitive" => value.as_str().unwrap_or("?").to_string(),
            "borrowed_ref" => {
                let lifetime = value["lifetime"]
                    .as_str()
                    .map(|l| format!("{l} "))
                    .unwrap_or_default();
                let mutability = if value["is_mutable"] == true {
                    "mut "
                } else {
                    ""
                };
                format!("&{lifetime}{mutability}{}", self.ty(&value["type"]))
            }
            "raw_pointer" => {
                let mutability = if value["is_mutable"] == true {
                    "mut"
                } else {
                    "const"
                };
                format!("*{mutability} {}", self.ty(&value["type"]))
            }
            "slice" => format!("[{}]", self.ty(value)),
            "array" => format!(
                "[{}; {}]",
                self.ty(&value["type"]),
                value["len"].as_str().unwrap_or("_")
            ),
            "tuple" => {
                let parts: Vec<String> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| self.ty(t))
                    .collect();
                if parts.len() == 1 {
                    format!("({},)", parts[0])
                } else {
                    format!("({})", parts.join(", "))
                }
            }
            "impl_trait" => format!("impl {}", self.bounds(value)),
            "dyn_trait" => {
                let mut parts: Vec<String> = value["traits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| self.path(&t["trait"]))
                    .collect();
                if let Some(lifetime) = value["lifetime"].as_str() {
                    parts.push(lifetime.to_string());
                }
                format!("dyn {}", parts.join(" + "))
            }
            "function_pointer" => {
                let sig = &value["sig"];
                let inputs: Vec<String> = sig["inputs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|input| self.ty(&input[1]))
                    .collect();
                let output = if sig["output"].is_null() {
                    String::new()
                } else {
                    format!(" -> {}", self.ty(&sig["output"]))
                };
                format!("fn({}){output}", inputs.join(", "))
            }
            "qualified_path" => {
                let self_type = self.ty(&value["self_type"]);
                let name = value["name"].as_str().unwrap_or("?");
                if value["trait"].is_null() {
                    format!("{self_type}::{name}")
                } else {
                    format!("<{self_type} as {}>::{name}", self.path(&value["trait"]))
                }
            }
            "infer" => "_".to_string(),
            _ => format!("{kind}({})", strip_ids(value)),
        }
    }

    fn bounds(&self, bounds: &Value) -> String {
        let parts: Vec<String> = bounds
            .as_array()
            .into_iter()
            .flatten()
            .map(|bound| {
                if let Some(t) = bound.get("trait_bound") {
                    let maybe = if t["modifier"] == "maybe" { "?" } else { "" };
                    format!("{maybe}{}", self.path(&t["trait"]))
                } else if let Some(l) = bound.get("outlives") {
                    l.as_str().unwrap_or("'_").to_string()
                } else {
                    strip_ids(bound)
                }
            })
            .collect();
        parts.join(" + ")
    }

    fn generics(&self, generics: &Value) -> String {
        let params: Vec<String> = generics["params"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|param| {
                let name = param["name"].as_str().unwrap_or("?");
                let kind = &param["kind"];
                if let Some(ty) = kind.get("type") {
                    if ty["is_synthetic"] == true {
                        return None;
                    }
                    let bounds = self.bounds(&ty["bounds"]);
                    Some(if bounds.is_empty() {
                        name.to_string()
                    } else {
                        format!("{name}: {bounds}")
                    })
                } else if let Some(c) = kind.get("const") {
                    Some(format!("const {name}: {}", self.ty(&c["type"])))
                } else {
                    Some(name.to_string())
                }
            })
            .collect();
        if params.is_empty() {
            String::new()
        } else {
            format!("<{}>", params.join(", "))
        }
    }

    fn where_clause(&self, generics: &Value) -> String {
        let predicates: Vec<String> = generics["where_predicates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                if let Some(b) = p.get("bound_predicate") {
                    format!("{}: {}", self.ty(&b["type"]), self.bounds(&b["bounds"]))
                } else {
                    strip_ids(p)
                }
            })
            .collect();
        if predicates.is_empty() {
            String::new()
        } else {
            format!(" where {}", predicates.join(", "))
        }
    }
}

fn auto_list(autos: &BTreeSet<String>) -> String {
    if autos.is_empty() {
        String::new()
    } else {
        format!(
            " [auto: {}]",
            autos.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

fn has_attr(item: &Value, name: &str) -> bool {
    item["attrs"].as_array().into_iter().flatten().any(|attr| {
        attr.as_str().is_some_and(|a| a == name || a.contains(name)) || attr.get(name).is_some()
    })
}

/// The key of a member of `owner`: functions end in `()`, so that a getter and the field it
/// reads (smithy-rs names both after the member) are two items.
fn member_key(owner: &str, member: &Value) -> String {
    let name = member["name"].as_str().unwrap_or("?");
    if member["inner"].get("function").is_some() {
        format!("{owner}::{name}()")
    } else {
        format!("{owner}::{name}")
    }
}

fn id_key(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}::{name}")
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

/// Compact JSON without the document-local `id`s, for shapes this renderer does not know.
fn strip_ids(value: &Value) -> String {
    fn strip(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| k.as_str() != "id")
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(value).to_string()
}

/// One changed item: its old and new declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The item's key.
    pub key: String,
    /// The declaration before.
    pub before: String,
    /// The declaration after.
    pub after: String,
    /// Why this change breaks callers, if it does.
    pub breaking: Option<String>,
}

/// One added or removed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The item's key.
    pub key: String,
    /// Its declaration.
    pub signature: String,
    /// Why this breaks callers, if it does.
    pub breaking: Option<String>,
}

/// What changed from one API to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiDiff {
    /// New items.
    pub added: Vec<Listed>,
    /// Items gone.
    pub removed: Vec<Listed>,
    /// Items whose declaration changed.
    pub changed: Vec<Changed>,
}

impl ApiDiff {
    /// Compares `old` with `new`.
    pub fn between(old: &Api, new: &Api) -> Self {
        let mut diff = ApiDiff::default();
        for (key, item) in &new.items {
            match old.items.get(key) {
                None => {
                    let breaking = item.parent.as_ref().and_then(|parent| {
                        let before = old.items.get(parent)?;
                        let after = new.items.get(parent)?;
                        let exhaustive = before.exhaustive && after.exhaustive;
                        match (item.kind, before.kind) {
                            ("field", "struct") if exhaustive => Some(format!(
                                "a new public field of {parent}, which callers can build with a \
                                 struct literal (not #[non_exhaustive])"
                            )),
                            ("variant", "enum") if exhaustive => Some(format!(
                                "a new variant of {parent}, which callers can match exhaustively \
                                 (not #[non_exhaustive])"
                            )),
                            (_, "trait") if item.required => Some(format!(
                                "a new required item of the trait {parent}: its implementors \
                                 lack it"
                            )),
                            _ => None,
                        }
                    });
                    diff.added.push(Listed {
                        key: key.clone(),
                        signature: item.signature.clone(),
                        breaking,
                    });
                }
                Some(before) if before.signature != item.signature => {
                    let only_gained_auto_traits = !before.auto_traits.is_empty()
                        && before.auto_traits.is_subset(&item.auto_traits)
                        && strip_autos(&before.signature) == strip_autos(&item.signature);
                    diff.changed.push(Changed {
                        key: key.clone(),
                        before: before.signature.clone(),
                        after: item.signature.clone(),
                        breaking: (!only_gained_auto_traits)
                            .then(|| "its declaration changed".to_string()),
                    });
                }
                Some(_) => {}
            }
        }
        for (key, item) in &old.items {
            if !new.items.contains_key(key) {
                diff.removed.push(Listed {
                    key: key.clone(),
                    signature: item.signature.clone(),
                    breaking: Some("removed".to_string()),
                });
            }
        }
        diff
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// The reasons this change breaks callers (empty: it does not).
    pub fn breaking_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        for item in &self.removed {
            reasons.push(format!("removed: {}", item.signature));
        }
        for item in &self.changed {
            if let Some(why) = &item.breaking {
                reasons.push(format!("changed ({why}): {}", item.key));
            }
        }
        for item in &self.added {
            if let Some(why) = &item.breaking {
                reasons.push(format!("added ({why}): {}", item.signature));
            }
        }
        reasons
    }

    /// True when a caller of the old API may stop compiling.
    pub fn is_breaking(&self) -> bool {
        !self.breaking_reasons().is_empty()
    }

    /// Every added, removed and changed item, one per line, with `prefix` before each line.
    pub fn report(&self, prefix: &str) -> String {
        let mut out = String::new();
        for item in &self.added {
            let mark = if item.breaking.is_some() {
                " (breaking)"
            } else {
                ""
            };
            let _ = writeln!(out, "{prefix}+ {}{mark}", item.signature);
        }
        for item in &self.removed {
            let _ = writeln!(out, "{prefix}- {}", item.signature);
        }
        for item in &self.changed {
            let mark = if item.breaking.is_some() {
                " (breaking)"
            } else {
                ""
            };
            let _ = writeln!(out, "{prefix}~ {}{mark}", item.key);
            let _ = writeln!(out, "{prefix}    was: {}", item.before);
            let _ = writeln!(out, "{prefix}    now: {}", item.after);
        }
        out
    }
}

fn strip_autos(signature: &str) -> &str {
    signature.split(" [auto: ").next().unwrap_or(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rustdoc JSON of a small crate, written by the toolchain that runs the tests.
    fn api_of(lib: &str) -> Api {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"api-probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), lib).unwrap();
        Api::of_package(dir.path(), "api-probe", &dir.path().join("target")).unwrap()
    }

    const OLD: &str = r#"
        mod private { #[non_exhaustive] #[derive(Debug, Clone)] pub struct Input { pub arn: Option<String> }
            impl Input { pub fn arn(&self) -> Option<&str> { self.arn.as_deref() } } }
        pub mod types { pub use crate::private::Input; }
        pub use types::Input;
        pub struct Open { pub a: u8 }
        #[non_exhaustive] pub enum Error { Denied(String), Unhandled }
        pub enum Closed { A }
        pub struct Client;
        impl Client { pub fn join(&self) -> u8 { 1 } pub fn view(&self) -> u8 { 2 } }
        pub trait Hook { fn call(&self); }
    "#;

    #[test]
    fn items_are_listed_under_their_public_paths() {
        let api = api_of(OLD);
        let keys: Vec<&str> = api.items().keys().map(String::as_str).collect();
        // `Input` is declared in a private module and re-exported twice: it is listed under the
        // shorter public path, with its fields, methods and impls; the other path is an alias.
        for key in [
            "Input",
            "Input::arn",
            "Input impl Clone",
            "types::Input",
            "Input::arn()",
            "Client::join()",
            "Error::Denied",
            "Hook::call()",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:#?}");
        }
        assert!(!keys.iter().any(|k| k.contains("private")), "{keys:#?}");
        let input = &api.items()["Input"];
        assert!(
            input
                .signature
                .starts_with("#[non_exhaustive] struct Input (fields) [auto: "),
            "{input:?}"
        );
        assert!(input.auto_traits.contains("Send"), "{input:?}");
        assert!(!input.exhaustive);
        assert!(api.items()["Open"].exhaustive);
        assert_eq!(
            api.items()["types::Input"].signature,
            "pub use Input as types::Input"
        );
        assert_eq!(
            api.items()["Input::arn"].signature,
            "field Input::arn: Option<String>"
        );
        assert_eq!(
            api.items()["Input::arn()"].signature,
            "method Input::arn(&self) -> Option<&str>"
        );
        assert!(api.items()["Hook::call()"].required);
    }

    #[test]
    fn additions_removals_and_changes_are_classified() {
        let old = api_of(OLD);
        // A field on a non_exhaustive struct and a method: additive.
        let additive = OLD.replace(
            "pub arn: Option<String> }",
            "pub arn: Option<String>, pub tag: Option<String> }",
        );
        let diff = ApiDiff::between(&old, &api_of(&additive));
        assert!(
            diff.removed.is_empty() && diff.changed.is_empty(),
            "{diff:#?}"
        );
        assert_eq!(diff.added.len(), 1, "{diff:#?}");
        assert!(!diff.is_breaking());

        // A field on an exhaustive struct, a variant of an exhaustive enum, a required trait
        // method: breaking additions.
        let breaking_adds = OLD
            .replace(
                "pub struct Open { pub a: u8 }",
                "pub struct Open { pub a: u8, pub b: u8 }",
            )
            .replace("pub enum Closed { A }", "pub enum Closed { A, B }")
            .replace("fn call(&self); }", "fn call(&self); fn more(&self); }");
        let diff = ApiDiff::between(&old, &api_of(&breaking_adds));
        let reasons = diff.breaking_reasons();
        assert_eq!(reasons.len(), 3, "{reasons:#?}");
        assert!(diff.removed.is_empty());

        // A removed method and a changed signature.
        let removed = OLD.replace(" pub fn view(&self) -> u8 { 2 }", "").replace(
            "pub fn join(&self) -> u8 { 1 }",
            "pub fn join(&self) -> u16 { 1 }",
        );
        let diff = ApiDiff::between(&old, &api_of(&removed));
        assert_eq!(diff.removed.len(), 1, "{diff:#?}");
        assert_eq!(
            diff.removed[0].signature,
            "method Client::view(&self) -> u8"
        );
        assert_eq!(diff.changed.len(), 1, "{diff:#?}");
        assert!(diff.is_breaking());
        let report = diff.report("  ");
        assert!(
            report.contains("  - method Client::view(&self) -> u8"),
            "{report}"
        );
        assert!(
            report.contains("now: method Client::join(&self) -> u16"),
            "{report}"
        );
    }

    #[test]
    fn another_format_version_is_refused_by_name() {
        let err = Api::from_json(br#"{"format_version": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("format version 1") && err.contains("57"),
            "{err}"
        );
    }
}
