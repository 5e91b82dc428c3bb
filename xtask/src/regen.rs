//! `cargo xtask regen [--check]`: model → Gradle (smithy-rs) → generated/.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

use crate::api;
use crate::cli::RegenArgs;
use crate::format::ensure_formatted;
use crate::generator_build::ensure_built;
use crate::generator_source::GeneratorSource;
use crate::gradle::{ensure_output_exists, GeneratorPins, GradleRun};
use crate::lock::ModelLock;
use crate::maven::Repositories;
use crate::model::{self, ModelSource, PulledModel};
use crate::model_transform::projection_transforms;
use crate::project::{Project, CRATE_NAME};
use crate::stamp::{Stamp, GENERATED_BY};
use crate::toolchain::{find_gradle, find_java};
use crate::tree::{restore, swap_in, write_atomically, Tree, TreeDiff};

/// Runs `regen` (or `regen --check`) on `project`.
pub fn run(project: &Project, args: &RegenArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let repos = Repositories::new(&args.maven_repos);
    let lock = ModelLock::read(&project.model_lock())?;
    if args.check {
        let committed = verify_committed(project)?;
        println!("regen --check: committed state is consistent ({committed})");
        println!(
            "regen --check: regenerating from the locked model into codegen/build and comparing \
             with generated/{CRATE_NAME}"
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
    )?;

    let java = find_java()?;
    let gradle = find_gradle(&project.codegen_dir())?;
    let pins = GeneratorPins::read(&project.codegen_dir())?;
    let mut properties = Vec::new();
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
        "regen: running smithy-rs codegen {} (smithy {}{}) with {} on {}",
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
    let previous = Tree::read(&project.generated_crate())?;
    let diff = TreeDiff::between(&previous, &regenerated);

    if args.check {
        if !diff.is_empty() {
            bail!(
                "generated/{CRATE_NAME} is not what the locked model and the pinned generator \
                 produce:\n{}\nrun `cargo xtask regen --model-file model/{}` and commit the result",
                diff.report(&previous, &regenerated, 200),
                crate::project::MODEL_FILE_NAME
            );
        }
        println!(
            "regen --check: generated/{CRATE_NAME} is exactly the generator's output ({} files, {:.1} s)",
            regenerated.files().len(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    let new_lock = pulled.lock(&projection_transforms(&project.codegen_dir())?);
    install(
        project,
        &regenerated,
        &new_lock,
        &pulled,
        lock.as_ref(),
        &pins,
    )?;
    let (api_added, api_removed) = api::diff(
        &api::public_items(&previous),
        &api::public_items(&regenerated),
    );
    print_summary(&Summary {
        pulled: &pulled,
        lock: &new_lock,
        pins: &pins,
        diff: &diff,
        files: regenerated.files().len(),
        api_added: &api_added,
        api_removed: &api_removed,
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(())
}

/// Checks what is committed without running anything: the model matches its lock, and the
/// generated crate matches its stamp (no hand edits) and was generated from that model.
/// Returns a one-line description of the state.
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
    let stamp = Stamp::read(&project.stamp_file())?;
    let crate_tree = Tree::read(&project.generated_crate())?;
    match stamp {
        None if crate_tree.is_empty() => Ok(format!(
            "model sha256 {} locked; no generated crate yet",
            short(&lock.sha256)
        )),
        None => bail!(
            "generated/{CRATE_NAME} exists but generated/regen-stamp.json does not; it was not \
             made by `cargo xtask regen`"
        ),
        Some(stamp) => {
            stamp.verify_tree(&crate_tree)?;
            if stamp.model_sha256 != lock.sha256 {
                bail!(
                    "generated/{CRATE_NAME} was generated from model sha256 {} but model/ is now {}; \
                     run `cargo xtask regen --model-file model/{}`",
                    short(&stamp.model_sha256),
                    short(&lock.sha256),
                    crate::project::MODEL_FILE_NAME
                );
            }
            Ok(format!(
                "model sha256 {}, generated crate {} files, smithy-rs {}",
                short(&lock.sha256),
                crate_tree.files().len(),
                stamp.smithy_rs_codegen_version
            ))
        }
    }
}

/// Swaps the regenerated crate in, checks that it builds, then records model, lock and stamp.
/// On any failure generated/ is left as it was.
fn install(
    project: &Project,
    regenerated: &Tree,
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
    let new_dir = staging.join(CRATE_NAME);
    regenerated.write(&new_dir)?;
    let backup = swap_in(
        &new_dir,
        &project.generated_crate(),
        &staging.join("previous"),
    )?;
    println!("regen: checking that the generated crate builds (cargo check -p {CRATE_NAME})");
    if let Err(err) = cargo_check(project.root()) {
        restore(&project.generated_crate(), backup.as_deref())?;
        let _ = std::fs::remove_dir_all(&staging);
        return Err(err.context(format!(
            "the regenerated crate does not build; generated/{CRATE_NAME} was left unchanged"
        )));
    }

    let mut lock = new_lock.clone();
    if let Some(old) = old_lock.filter(|old| old.source == lock.source) {
        lock.note = old.note.clone();
    }
    let stamp = Stamp {
        generated_by: GENERATED_BY.to_string(),
        crate_dir: CRATE_NAME.to_string(),
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

fn cargo_check(root: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "check",
            "--quiet",
            "--package",
            CRATE_NAME,
            "--all-targets",
            "--all-features",
        ])
        .status()
        .context("cannot run cargo check")?;
    if !status.success() {
        bail!("cargo check -p {CRATE_NAME} failed ({status})");
    }
    Ok(())
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
    diff: &'a TreeDiff,
    files: usize,
    api_added: &'a [String],
    api_removed: &'a [String],
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
        "  codegen:    smithy-rs {} (software.amazon.smithy.rust), smithy {}, crate version {}",
        s.pins.smithy_rs_codegen_version, s.pins.smithy_version, s.pins.module_version
    );
    println!(
        "  files:      {} added, {} changed, {} removed ({} files in generated/{CRATE_NAME})",
        s.diff.added.len(),
        s.diff.changed.len(),
        s.diff.removed.len(),
        s.files
    );
    for (mark, list) in [
        ("+", &s.diff.added),
        ("~", &s.diff.changed),
        ("-", &s.diff.removed),
    ] {
        for path in list.iter().take(50) {
            println!("              {mark} {path}");
        }
    }
    println!(
        "  public API: {} added, {} removed",
        s.api_added.len(),
        s.api_removed.len()
    );
    for (mark, list) in [("+", s.api_added), ("-", s.api_removed)] {
        for item in list.iter().take(100) {
            println!("              {mark} {item}");
        }
    }
    println!("  took:       {:.1} s", s.seconds);
}
