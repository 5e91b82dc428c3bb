//! `cargo xtask regen [--check]`: model → Gradle (smithy-rs) → generated/.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{Api, ApiDiff};
use crate::cli::RegenArgs;
use crate::format::ensure_formatted;
use crate::generator_build::ensure_built;
use crate::generator_source::GeneratorSource;
use crate::gradle::{ensure_output_exists, GeneratorPins, GradleRun};
use crate::lock::ModelLock;
use crate::maven::Repositories;
use crate::model::{self, ModelSource, PulledModel};
use crate::model_transform::projection_transforms;
use crate::package::{
    advise, read_workspace_dependency, set_workspace_dependency, Change, CratePackage, Version,
    VersionAdvice,
};
use crate::project::{Project, AWS_CRATE_NAME, DEPENDENCY_KEY};
use crate::stamp::{Stamp, GENERATED_BY};
use crate::toolchain::{find_gradle, find_java};
use crate::tree::{restore, swap_in, write_atomically, Tree, TreeDiff};

/// Runs `regen` (or `regen --check`) on `project`.
pub fn run(project: &Project, args: &RegenArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let repos = Repositories::new(&args.maven_repos);
    let lock = ModelLock::read(&project.model_lock())?;
    let pins = GeneratorPins::read(&project.codegen_dir())?;
    let krate = crate_package(args, lock.as_ref(), &pins)?;
    if args.check {
        let committed = verify_committed(project)?;
        println!("regen --check: committed state is consistent ({committed})");
        println!(
            "regen --check: regenerating from the locked model into codegen/build and comparing \
             with generated/{}",
            krate.name
        );
    }

    let source = ModelSource::from_args(args);
    println!(
        "regen: pulling the model ({})",
        describe_source(&source, &repos)
    );
    let model_path = project.model_file();
    let pulled = model::pull(
        &source,
        &repos,
        lock.as_ref().map(|lock| (model_path.as_path(), lock)),
        project.root(),
    )?;

    let java = find_java()?;
    let gradle = find_gradle(&project.codegen_dir())?;
    let mut properties = package_properties(project, &krate)?;
    // Kept alive until the generator has run: an unpacked archive lives in it.
    let source = match &args.generator_source {
        Some(path) => {
            let source = GeneratorSource::open(
                path,
                args.generator_commit.as_deref(),
                &pins.smithy_rs_codegen_version,
                &project.codegen_dir().join("build"),
            )?;
            println!(
                "regen: smithy-rs {} source {} (commit {} from {})",
                source.codegen_version,
                path.display(),
                source.commit,
                source.commit_origin
            );
            let built = ensure_built(
                &source,
                &gradle,
                &project.codegen_dir(),
                &repos,
                args.verbose,
            )?;
            if built.cached {
                println!(
                    "regen: using the generator built earlier from this source ({})",
                    built.jars_dir.display()
                );
            } else {
                println!(
                    "regen: built the generator from source in {:.1} s (cached in {})",
                    built.build_seconds,
                    built.jars_dir.display()
                );
            }
            properties.push(("generatorSource", source.root.display().to_string()));
            properties.push(("generatorJars", built.jars_dir.display().to_string()));
            Some(source)
        }
        None => None,
    };
    println!(
        "regen: running smithy-rs codegen {} (smithy {}{}) with {} on {}, crate {krate}",
        pins.smithy_rs_codegen_version,
        pins.smithy_version,
        if source.is_some() {
            ", built from source"
        } else {
            ", published artifacts"
        },
        gradle.display(),
        java.version
    );
    for transform in &pulled.generator.applied {
        println!(
            "regen: model transformation {}: removed {} endpoint test case(s)",
            transform.name,
            transform.removed_test_cases.len()
        );
    }

    // The Gradle build reads the model from a scratch file so that model/ only changes once the
    // whole regeneration has succeeded; it is the model after the recorded transformations.
    let scratch_model = project.codegen_dir().join("build/xtask-model.json");
    std::fs::create_dir_all(scratch_model.parent().expect("has a parent"))
        .context("cannot create codegen/build")?;
    std::fs::write(&scratch_model, &pulled.generator.json)
        .with_context(|| format!("cannot write {}", scratch_model.display()))?;
    properties.push(("modelFile", scratch_model.display().to_string()));
    let gradle_output = GradleRun {
        gradle: &gradle,
        codegen_dir: &project.codegen_dir(),
        task: "generateSdk",
        properties,
        repos: &repos,
        verbose: args.verbose,
    }
    .run()?;
    drop(source);
    ensure_output_exists(&project.codegen_output())?;
    ensure_formatted(&project.codegen_output(), &gradle_output)?;
    let regenerated = Tree::read(&project.codegen_output())?;
    let previous_package = previous_package(project, lock.as_ref(), &pins)?;
    let previous = Tree::read(&project.generated_crate(&previous_package.name))?;
    let diff = TreeDiff::between(&previous, &regenerated);

    if args.check {
        if !diff.is_empty() {
            bail!(
                "generated/{} is not what the locked model and the pinned generator \
                 produce:\n{}\nrun `cargo xtask regen --model-file model/{}` and commit the result",
                krate.name,
                diff.report(&previous, &regenerated, 200),
                crate::project::MODEL_FILE_NAME
            );
        }
        println!(
            "regen --check: generated/{} is exactly the generator's output ({} files, {:.1} s)",
            krate.name,
            regenerated.files().len(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    let changed = !diff.is_empty() || previous_package.name != krate.name;
    let api_dir = project.target_dir().join("xtask-rustdoc");
    // The API before the change, from the crate still in place (absent on the first regen).
    let old_api = if changed && !previous.is_empty() {
        println!(
            "regen: reading the public API of generated/{} (rustdoc JSON)",
            previous_package.name
        );
        Some(api_of(project, &previous_package.name, &previous, &api_dir))
    } else {
        None
    };

    let mut new_lock = pulled.lock(&projection_transforms(&project.codegen_dir())?);
    new_lock.krate = (krate != default_package(&pins)).then(|| krate.clone());
    install(
        project,
        &regenerated,
        &krate,
        &previous_package.name,
        &new_lock,
        &pulled,
        lock.as_ref(),
        &pins,
    )?;

    let api = if !changed {
        ApiOutcome::Unchanged
    } else {
        match old_api {
            None => ApiOutcome::FirstGeneration,
            Some(Err(err)) => ApiOutcome::Unknown(format!("{err:#}")),
            Some(Ok(old)) => {
                println!(
                    "regen: reading the public API of generated/{} (rustdoc JSON)",
                    krate.name
                );
                match api_of(project, &krate.name, &regenerated, &api_dir) {
                    Ok(new) => ApiOutcome::Compared(ApiDiff::between(&old, &new)),
                    Err(err) => ApiOutcome::Unknown(format!("{err:#}")),
                }
            }
        }
    };
    let workspace = if changed {
        println!(
            "regen: checking the workspace against the new crate (cargo check --workspace \
             --all-targets)"
        );
        check_workspace(project, &krate.name)?
    } else {
        WorkspaceCheck::default()
    };
    let version = version_advice(&previous_package, &krate, &api, changed);
    print_summary(&Summary {
        pulled: &pulled,
        lock: &new_lock,
        pins: &pins,
        krate: &krate,
        diff: &diff,
        files: regenerated.files().len(),
        api: &api,
        version: version.as_ref(),
        workspace: &workspace,
        seconds: started.elapsed().as_secs_f64(),
    });
    verdict(
        &krate,
        &api,
        version.as_ref(),
        &workspace,
        args.allow_breaking,
    )
}

/// The public API of the crate `package` (whose files are `tree`) in the workspace, through
/// rustdoc JSON; kept under `api_dir/cache` by the tree's hash, so the same crate is read once.
fn api_of(project: &Project, package: &str, tree: &Tree, api_dir: &Path) -> anyhow::Result<Api> {
    let cache = api_dir.join("cache").join(format!(
        "{}-v{}.json",
        tree.hash(),
        crate::api::FORMAT_VERSION
    ));
    if let Ok(bytes) = std::fs::read(&cache) {
        if let Ok(api) = Api::from_json(&bytes) {
            return Ok(api);
        }
    }
    let json = crate::api::rustdoc_json(project.root(), package, api_dir)?;
    let bytes = std::fs::read(&json).with_context(|| format!("cannot read {}", json.display()))?;
    let api = Api::from_json(&bytes).with_context(|| format!("reading {}", json.display()))?;
    if let Some(dir) = cache.parent() {
        if std::fs::create_dir_all(dir).is_ok() {
            let _ = write_atomically(&cache, &bytes);
        }
    }
    Ok(api)
}

/// What became of the public API.
#[derive(Debug)]
pub enum ApiOutcome {
    /// The crate's files did not change.
    Unchanged,
    /// There was no generated crate before.
    FirstGeneration,
    /// rustdoc could not read one side; the reason.
    Unknown(String),
    /// Both sides were read.
    Compared(ApiDiff),
}

/// The name and version the generated crate gets: the flags, else the lock, else the defaults.
fn crate_package(
    args: &RegenArgs,
    lock: Option<&ModelLock>,
    pins: &GeneratorPins,
) -> anyhow::Result<CratePackage> {
    let locked = lock.and_then(|lock| lock.krate.clone());
    let default = default_package(pins);
    let name = args
        .crate_name
        .clone()
        .or_else(|| locked.as_ref().map(|k| k.name.clone()))
        .unwrap_or(default.name);
    let version = args
        .crate_version
        .clone()
        .or_else(|| locked.as_ref().map(|k| k.version.clone()))
        .unwrap_or(default.version);
    CratePackage::new(&name, &version)
}

/// The generator's defaults: AWS's name and the version pinned in `codegen/gradle.properties`.
fn default_package(pins: &GeneratorPins) -> CratePackage {
    CratePackage {
        name: AWS_CRATE_NAME.to_string(),
        version: pins.module_version.clone(),
    }
}

/// The crate in `generated/` now: as the lock records it (the stamp names its directory).
fn previous_package(
    project: &Project,
    lock: Option<&ModelLock>,
    pins: &GeneratorPins,
) -> anyhow::Result<CratePackage> {
    let mut package = lock
        .and_then(|lock| lock.krate.clone())
        .unwrap_or_else(|| default_package(pins));
    if let Some(stamp) = Stamp::read(&project.stamp_file())? {
        package.name = stamp.crate_dir;
    }
    Ok(package)
}

/// Gradle properties for the package settings: name and version always; for a name other than
/// AWS's also a description and this workspace's repository, so that a crate we publish does
/// not claim to be AWS's.
fn package_properties(
    project: &Project,
    krate: &CratePackage,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut properties = vec![
        ("moduleName", krate.name.clone()),
        ("moduleVersion", krate.version.clone()),
    ];
    if !krate.is_aws_name() {
        properties.push((
            "moduleDescription",
            "Client for the Amazon Kinesis Video WebRTC Storage API (JoinStorageSession), \
             generated by the official smithy-rs generator from AWS's Smithy model; part of \
             kvs-webrtc-rs"
                .to_string(),
        ));
        let manifest = std::fs::read_to_string(project.workspace_manifest())
            .with_context(|| format!("cannot read {}", project.workspace_manifest().display()))?;
        if let Some(repository) = workspace_repository(&manifest) {
            properties.push(("moduleRepository", repository));
        }
    }
    Ok(properties)
}

/// `repository` of `[workspace.package]`.
fn workspace_repository(manifest: &str) -> Option<String> {
    let mut in_section = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section {
            if let Some(value) = line
                .strip_prefix("repository")
                .and_then(|rest| rest.trim_start().strip_prefix('='))
            {
                return Some(value.trim().trim_matches('"').to_string());
            }
        }
    }
    None
}

/// Checks what is committed without running anything: the model matches its lock, the
/// generated crate matches its stamp (no hand edits), was generated from that model under the
/// locked name and version, is the only crate in `generated/`, and the workspace dependency
/// points at it. Returns a one-line description of the state.
pub fn verify_committed(project: &Project) -> anyhow::Result<String> {
    let lock = ModelLock::read(&project.model_lock())?.context(
        "model/model.lock.json is missing; run `cargo xtask regen` to pull and lock the model",
    )?;
    let model = std::fs::read(project.model_file())
        .with_context(|| format!("cannot read {}", project.model_file().display()))?;
    lock.verify(&model)
        .context("model/ does not match its lock")?;
    model::validate(&model).context("the locked model is not valid")?;
    let generator = crate::model_transform::apply(&model)?;
    let expected = crate::lock::GeneratorInput {
        sha256: generator.sha256,
        model_transforms: generator.applied,
        projection_transforms: projection_transforms(&project.codegen_dir())?,
    };
    if lock.generator_input.as_ref() != Some(&expected) {
        bail!(
            "model/model.lock.json does not record what the generator reads from this model \
             (transformations or codegen/smithy-build.json transforms changed); run \
             `cargo xtask regen --model-file model/{}` and commit",
            crate::project::MODEL_FILE_NAME
        );
    }
    let pins = GeneratorPins::read(&project.codegen_dir())?;
    let krate = lock.krate.clone().unwrap_or_else(|| default_package(&pins));
    let stamp = Stamp::read(&project.stamp_file())?;
    let crate_tree = Tree::read(&project.generated_crate(&krate.name))?;
    let others = other_generated_crates(project, &krate.name)?;
    if !others.is_empty() {
        bail!(
            "generated/ holds {} besides generated/{} (the crate the lock names); remove it or \
             regenerate with `cargo xtask regen --model-file model/{}`",
            others.join(", "),
            krate.name,
            crate::project::MODEL_FILE_NAME
        );
    }
    match stamp {
        None if crate_tree.is_empty() => Ok(format!(
            "model sha256 {} locked; no generated crate yet",
            short(&lock.sha256)
        )),
        None => bail!(
            "generated/{} exists but generated/regen-stamp.json does not; it was not made by \
             `cargo xtask regen`",
            krate.name
        ),
        Some(stamp) => {
            if stamp.crate_dir != krate.name {
                bail!(
                    "generated/regen-stamp.json describes generated/{} but model/model.lock.json \
                     names the crate {}; run `cargo xtask regen --model-file model/{}`",
                    stamp.crate_dir,
                    krate.name,
                    crate::project::MODEL_FILE_NAME
                );
            }
            stamp.verify_tree(&crate_tree)?;
            if stamp.model_sha256 != lock.sha256 {
                bail!(
                    "generated/{} was generated from model sha256 {} but model/ is now {}; \
                     run `cargo xtask regen --model-file model/{}`",
                    krate.name,
                    short(&stamp.model_sha256),
                    short(&lock.sha256),
                    crate::project::MODEL_FILE_NAME
                );
            }
            let manifest =
                std::fs::read_to_string(project.workspace_manifest()).with_context(|| {
                    format!("cannot read {}", project.workspace_manifest().display())
                })?;
            read_workspace_dependency(&manifest)?.expect_points_at(&krate)?;
            Ok(format!(
                "model sha256 {}, generated crate {krate} ({} files), smithy-rs {}",
                short(&lock.sha256),
                crate_tree.files().len(),
                stamp.smithy_rs_codegen_version
            ))
        }
    }
}

/// Directories under `generated/` that hold a crate other than `name`.
fn other_generated_crates(project: &Project, name: &str) -> anyhow::Result<Vec<String>> {
    let mut others = Vec::new();
    let Ok(entries) = std::fs::read_dir(project.generated_dir()) else {
        return Ok(others);
    };
    for entry in entries {
        let entry = entry.context("cannot list generated/")?;
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        if dir_name != name
            && !dir_name.starts_with('.')
            && entry.path().join("Cargo.toml").is_file()
        {
            others.push(format!("generated/{dir_name}"));
        }
    }
    others.sort();
    Ok(others)
}

/// Swaps the regenerated crate in (as `generated/<name>`, replacing `generated/<previous>`),
/// points the workspace dependency at it, checks that it builds, then records model, lock and
/// stamp. On any failure generated/ and Cargo.toml are left as they were.
#[allow(clippy::too_many_arguments)]
fn install(
    project: &Project,
    regenerated: &Tree,
    krate: &CratePackage,
    previous_name: &str,
    new_lock: &ModelLock,
    pulled: &PulledModel,
    old_lock: Option<&ModelLock>,
    pins: &GeneratorPins,
) -> anyhow::Result<()> {
    let staging = project.staging_dir();
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    let new_dir = staging.join(&krate.name);
    regenerated.write(&new_dir)?;
    let target = project.generated_crate(&krate.name);
    // A renamed crate: the old directory moves out of the way (back on failure).
    let renamed_from = project.generated_crate(previous_name);
    let moved_old = if previous_name != krate.name && renamed_from.exists() {
        let aside = staging.join("previous-name");
        std::fs::rename(&renamed_from, &aside)
            .with_context(|| format!("cannot move {} aside", renamed_from.display()))?;
        Some(aside)
    } else {
        None
    };
    let backup = swap_in(&new_dir, &target, &staging.join("previous"))?;
    let manifest_path = project.workspace_manifest();
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let undo = |reason: anyhow::Error| -> anyhow::Error {
        let _ = restore(&target, backup.as_deref());
        if let Some(aside) = &moved_old {
            let _ = std::fs::rename(aside, &renamed_from);
        }
        let _ = write_atomically(&manifest_path, manifest.as_bytes());
        let _ = std::fs::remove_dir_all(&staging);
        reason
    };
    match set_workspace_dependency(&manifest, krate) {
        Ok(updated) if updated != manifest => {
            if let Err(err) = write_atomically(&manifest_path, updated.as_bytes()) {
                return Err(undo(err));
            }
            println!(
                "regen: Cargo.toml: the `{DEPENDENCY_KEY}` workspace dependency now names {krate}"
            );
        }
        Ok(_) => {}
        Err(err) => return Err(undo(err)),
    }
    println!(
        "regen: checking that the generated crate builds (cargo check -p {})",
        krate.name
    );
    if let Err(err) = cargo_check(project.root(), &krate.name) {
        return Err(undo(err.context(format!(
            "the regenerated crate does not build; generated/{previous_name} was left unchanged"
        ))));
    }

    let mut lock = new_lock.clone();
    if let Some(old) = old_lock.filter(|old| old.source == lock.source) {
        lock.note = old.note.clone();
    }
    let stamp = Stamp {
        generated_by: GENERATED_BY.to_string(),
        crate_dir: krate.name.clone(),
        model_sha256: lock.sha256.clone(),
        smithy_rs_codegen_version: pins.smithy_rs_codegen_version.clone(),
        smithy_version: pins.smithy_version.clone(),
        tree_sha256: regenerated.hash(),
    };
    std::fs::create_dir_all(project.model_dir()).context("cannot create model/")?;
    write_atomically(&project.model_file(), &pulled.json)?;
    write_atomically(&project.model_lock(), lock.to_json().as_bytes())?;
    write_atomically(&project.stamp_file(), stamp.to_json().as_bytes())?;
    std::fs::remove_dir_all(&staging)
        .with_context(|| format!("cannot remove {}", staging.display()))?;
    Ok(())
}

fn cargo_check(root: &Path, package: &str) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "check",
            "--quiet",
            "--package",
            package,
            "--all-targets",
            "--all-features",
        ])
        .status()
        .context("cannot run cargo check")?;
    if !status.success() {
        bail!("cargo check -p {package} failed ({status})");
    }
    Ok(())
}

/// What `cargo check --workspace --all-targets` found after the swap.
#[derive(Debug, Default)]
pub struct WorkspaceCheck {
    /// Hand-written packages with compile errors, and their first errors.
    pub broken: BTreeMap<String, Vec<String>>,
    /// Packages not checked, or only in part, because they (or their tests) depend on a broken
    /// one.
    pub blocked: Vec<String>,
    /// Cargo failed without naming a package (resolution, manifest): its last lines.
    pub other_failure: Option<String>,
}

impl WorkspaceCheck {
    /// True when the whole workspace compiled.
    pub fn is_ok(&self) -> bool {
        self.broken.is_empty() && self.other_failure.is_none()
    }
}

/// Checks every target of every workspace package (`--keep-going`, so that each broken package
/// is found) and names the packages that no longer compile.
fn check_workspace(project: &Project, generated: &str) -> anyhow::Result<WorkspaceCheck> {
    let packages = crate::publish::workspace_packages(project.root())?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(project.root())
        .args([
            "check",
            "--workspace",
            "--all-targets",
            "--keep-going",
            "--message-format=json",
        ])
        .output()
        .context("cannot run cargo check --workspace")?;
    let mut result = WorkspaceCheck::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-message" || message["message"]["level"] != "error" {
            continue;
        }
        let id = message["package_id"].as_str().unwrap_or_default();
        let name = packages
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_string());
        let text = message["message"]["message"].as_str().unwrap_or("error");
        if text.starts_with("aborting due to") || text.starts_with("could not compile") {
            continue;
        }
        let code = message["message"]["code"]["code"]
            .as_str()
            .map(|c| format!("[{c}]"))
            .unwrap_or_default();
        let place = message["message"]["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["is_primary"] == true))
            .map(|s| {
                format!(
                    " at {}:{}",
                    s["file_name"].as_str().unwrap_or("?"),
                    s["line_start"]
                )
            })
            .unwrap_or_default();
        let entry = format!("error{code}: {text}{place}");
        let errors = result.broken.entry(name).or_default();
        if !errors.contains(&entry) {
            errors.push(entry);
        }
    }
    result.broken.remove(generated);
    if !output.status.success() && result.broken.is_empty() {
        result.other_failure = Some(
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    // Dependents of a broken package were not checked (cargo skips them).
    let broken: BTreeSet<&str> = result.broken.keys().map(String::as_str).collect();
    let mut blocked = BTreeSet::new();
    loop {
        let before = blocked.len();
        for package in &packages {
            if broken.contains(package.name.as_str()) || blocked.contains(&package.name) {
                continue;
            }
            if package
                .workspace_dependencies
                .iter()
                .any(|d| broken.contains(d.as_str()) || blocked.contains(d))
            {
                blocked.insert(package.name.clone());
            }
        }
        if blocked.len() == before {
            break;
        }
    }
    result.blocked = blocked.into_iter().collect();
    Ok(result)
}

/// The version the change calls for (`None`: the crate was renamed or generated the first time,
/// so there is no earlier version of this package to compare with).
fn version_advice(
    previous: &CratePackage,
    krate: &CratePackage,
    api: &ApiOutcome,
    changed: bool,
) -> Option<VersionAdvice> {
    if previous.name != krate.name {
        return None;
    }
    let change = match api {
        ApiOutcome::Unchanged => None,
        ApiOutcome::FirstGeneration => return None,
        ApiOutcome::Unknown(_) => Some(Change::Breaking),
        ApiOutcome::Compared(diff) if diff.is_breaking() => Some(Change::Breaking),
        ApiOutcome::Compared(diff) if !diff.is_empty() => Some(Change::Additive),
        ApiOutcome::Compared(_) => changed.then_some(Change::Patch),
    };
    let previous = Version::parse(&previous.version).ok()?;
    let current = Version::parse(&krate.version).ok()?;
    Some(advise(&previous, &current, change))
}

/// Exit status: a model change that breaks hand-written crates, or breaks the crate's API
/// without the version bump that needs (or cannot be compared), fails
/// (`ModelChangeNotAccepted`, exit 4) unless `--allow-breaking`. An addition without the
/// suggested version passes with the suggestion in the summary (publishing a changed crate under
/// a version the registry already has fails there).
fn verdict(
    krate: &CratePackage,
    api: &ApiOutcome,
    version: Option<&VersionAdvice>,
    workspace: &WorkspaceCheck,
    allow_breaking: bool,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if !workspace.broken.is_empty() {
        problems.push(format!(
            "hand-written crates no longer compile: {}",
            workspace
                .broken
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(failure) = &workspace.other_failure {
        problems.push(format!("cargo check --workspace failed:\n{failure}"));
    }
    let bumped = version.is_some_and(|advice| advice.sufficient);
    match api {
        ApiOutcome::Unknown(why) if !bumped => problems.push(format!(
            "the public API could not be compared, so the change may be breaking ({why})"
        )),
        ApiOutcome::Compared(diff) if diff.is_breaking() && !bumped => {
            let needed = version
                .and_then(|advice| advice.suggested.as_ref())
                .map(|v| format!("; a breaking change needs version {v}"))
                .unwrap_or_default();
            problems.push(format!(
                "the public API of {krate} changed incompatibly (the `breaking:` lines above){needed}"
            ));
        }
        _ => {}
    }
    if problems.is_empty() {
        return Ok(());
    }
    let next = version
        .and_then(|a| a.suggested.as_ref())
        .map(|v| format!(" --crate-version {v}"))
        .unwrap_or_default();
    let message = format!(
        "the model change is not accepted as it is:\n  - {}\ngenerated/{} and model/ now hold \
         the new crate (see the summary above). Fix the hand-written crates and regenerate with \
         the version the change needs (`cargo xtask regen --model-file model/{}{next}`), accept \
         it as it is with --allow-breaking, or undo it with `git checkout -- Cargo.toml \
         Cargo.lock model/ generated/`",
        problems.join("\n  - "),
        krate.name,
        crate::project::MODEL_FILE_NAME
    );
    if allow_breaking {
        println!("regen: accepted with --allow-breaking: {message}");
        return Ok(());
    }
    Err(anyhow::Error::new(crate::ModelChangeNotAccepted {
        message,
    }))
}

fn describe_source(source: &ModelSource, repos: &Repositories) -> String {
    let (group, artifact) = crate::project::MODEL_ARTIFACT;
    match source {
        ModelSource::Maven {
            version: Some(version),
        } => format!(
            "{group}:{artifact}:{version} from {}",
            repos.urls().join(", ")
        ),
        ModelSource::Maven { version: None } => {
            format!("newest {group}:{artifact} from {}", repos.urls().join(", "))
        }
        ModelSource::Url(url) => url.clone(),
        ModelSource::File(path) => path.display().to_string(),
        ModelSource::Locked => "locked model in model/".to_string(),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

struct Summary<'a> {
    pulled: &'a PulledModel,
    lock: &'a ModelLock,
    pins: &'a GeneratorPins,
    krate: &'a CratePackage,
    diff: &'a TreeDiff,
    files: usize,
    api: &'a ApiOutcome,
    version: Option<&'a VersionAdvice>,
    workspace: &'a WorkspaceCheck,
    seconds: f64,
}

fn print_summary(s: &Summary<'_>) {
    let lock = s.lock;
    println!("regen summary");
    println!("  model:      {}", s.pulled.source.describe());
    println!(
        "              version {}, service {} {}",
        s.pulled
            .source
            .version()
            .unwrap_or("(not versioned: URL or file)"),
        lock.service,
        lock.service_version
    );
    println!("              sha256 {}", lock.sha256);
    if let Some(input) = &lock.generator_input {
        for transform in &input.model_transforms {
            println!(
                "              generator reads it after {} ({} test case(s) removed)",
                transform.name,
                transform.removed_test_cases.len()
            );
        }
        for transform in &input.projection_transforms {
            println!("              projection transform {transform}");
        }
    }
    println!(
        "              operations: {}",
        s.pulled.summary.operations.join(", ")
    );
    println!(
        "  codegen:    smithy-rs {} (software.amazon.smithy.rust), smithy {}",
        s.pins.smithy_rs_codegen_version, s.pins.smithy_version
    );
    println!(
        "  crate:      {}{}",
        s.krate,
        if s.krate.is_aws_name() {
            " (AWS's name: only AWS publishes it on crates.io; pass --crate-name to publish)"
        } else {
            ""
        }
    );
    println!(
        "  files:      {} added, {} changed, {} removed ({} files in generated/{})",
        s.diff.added.len(),
        s.diff.changed.len(),
        s.diff.removed.len(),
        s.files,
        s.krate.name
    );
    for (mark, list) in [
        ("+", &s.diff.added),
        ("~", &s.diff.changed),
        ("-", &s.diff.removed),
    ] {
        for path in list.iter().take(50) {
            println!("              {mark} {path}");
        }
        if list.len() > 50 {
            println!("              {mark} ... {} more", list.len() - 50);
        }
    }
    match s.api {
        ApiOutcome::Unchanged => println!("  public API: unchanged (no file changed)"),
        ApiOutcome::FirstGeneration => {
            println!("  public API: first generation (nothing to compare with)")
        }
        ApiOutcome::Unknown(why) => println!("  public API: could not be compared: {why}"),
        ApiOutcome::Compared(diff) => {
            let verdict = if diff.is_breaking() {
                "BREAKING"
            } else if diff.is_empty() {
                "unchanged"
            } else {
                "additive, not breaking"
            };
            println!(
                "  public API: {} added, {} removed, {} changed: {verdict} (rustdoc JSON)",
                diff.added.len(),
                diff.removed.len(),
                diff.changed.len()
            );
            print!("{}", diff.report("              "));
            for reason in diff.breaking_reasons().iter().take(5) {
                println!("              breaking: {reason}");
            }
            if diff.breaking_reasons().len() > 5 {
                println!(
                    "              breaking: ... {} more",
                    diff.breaking_reasons().len() - 5
                );
            }
            if s.krate.is_aws_name() && !diff.is_empty() {
                println!(
                    "              note: the crate keeps AWS's name and version {}, but its API is \
                     no longer AWS's {}; a [patch] with it would swap APIs under that number",
                    s.krate.version, s.krate.version
                );
            }
        }
    }
    match s.version {
        None => {}
        Some(advice) => match &advice.suggested {
            None => println!(
                "  version:    {} (no change calls for another)",
                advice.current
            ),
            Some(suggested) if advice.sufficient => println!(
                "  version:    {} -> {} (the change needs {suggested} or later)",
                advice.previous, advice.current
            ),
            Some(suggested) => println!(
                "  version:    {} is not enough: this change needs {suggested} (the next version \
                 after {}); regenerate with --crate-version {suggested} before publishing",
                advice.current, advice.previous
            ),
        },
    }
    if s.workspace.is_ok() {
        if !matches!(s.api, ApiOutcome::Unchanged) {
            println!("  workspace:  every package compiles against the new crate");
        }
    } else {
        println!(
            "  workspace:  {} hand-written crate(s) no longer compile",
            s.workspace.broken.len()
        );
        for (package, errors) in &s.workspace.broken {
            println!("              {package}:");
            for error in errors.iter().take(5) {
                println!("                {error}");
            }
            if errors.len() > 5 {
                println!("                ... {} more", errors.len() - 5);
            }
        }
        if !s.workspace.blocked.is_empty() {
            println!(
                "              not checked, in whole or in part (they or their tests depend on a \
                 broken crate): {}",
                s.workspace.blocked.join(", ")
            );
        }
        if let Some(failure) = &s.workspace.other_failure {
            println!("              {failure}");
        }
    }
    println!("  took:       {:.1} s", s.seconds);
}
