//! `cargo xtask regen --generator-source`: the smithy-rs generator built from its source (the
//! pinned release archive), cached, run on the locked model, and every way the source can be
//! wrong refused with a clear error and nothing in model/ or generated/ touched.
//!
//! Needs Java, Gradle, Maven Central (Kotlin compiler, smithy) and the pinned source archive
//! (see `support::smithy_rs_source`). The first test to need the generator builds it (about two
//! minutes on two cores) into the per-user cache; the others reuse it.

mod support;

use std::path::{Path, PathBuf};

use support::{smithy_rs_source, Run, Scratch};

const COMMIT: &str = "56ee88c5c6edd967967656f1e29f46b229105e79";

fn regen_from(scratch: &Scratch, source: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec!["--generator-source", source.to_str().unwrap()];
    args.extend_from_slice(extra);
    scratch.regen(&args, env)
}

/// The pinned archive unpacked into `dir`; returns the tree's root.
fn unpacked_source(dir: &Path) -> PathBuf {
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(smithy_rs_source())
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let root = std::fs::read_dir(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(root.join("codegen-core").is_dir(), "{}", root.display());
    root
}

#[test]
fn check_regenerates_with_the_source_built_generator_and_reuses_the_jars() {
    let scratch = Scratch::with_generated();
    let source = smithy_rs_source();
    let first = regen_from(&scratch, &source, &["--check"], &[]);
    first.expect_success();
    for fragment in [
        "regenerating from the locked model",
        &format!("commit {COMMIT} from the archive's pax header"),
        "built from source",
        "removeIsoDualStackEndpointTests: removed 4 endpoint test case(s)",
        "is exactly the generator's output (57 files",
    ] {
        assert!(
            first.stdout.contains(fragment),
            "lacks {fragment:?}:\n{}",
            first.stdout
        );
    }
    let second = regen_from(&scratch, &source, &["--check"], &[]);
    second.expect_success();
    assert!(
        second
            .stdout
            .contains("using the generator built earlier from this source"),
        "{}",
        second.stdout
    );
    assert!(!second.stdout.contains("built the generator from source in"));
    scratch.assert_model_and_generated_untouched();

    // The comparison is real: a generated file that differs from the generator's output (with
    // the stamp updated, so only regeneration can notice) fails the check.
    let lib = scratch.path(&format!("{}/src/lib.rs", support::GENERATED_CRATE));
    let mut text = std::fs::read_to_string(&lib).unwrap();
    text.push_str("// drift\n");
    std::fs::write(&lib, text).unwrap();
    let tree = xtask::tree::Tree::read(&scratch.path(support::GENERATED_CRATE)).unwrap();
    let stamp_path = scratch.path("generated/regen-stamp.json");
    let mut stamp = xtask::stamp::Stamp::read(&stamp_path).unwrap().unwrap();
    stamp.tree_sha256 = tree.hash();
    std::fs::write(&stamp_path, stamp.to_json()).unwrap();
    regen_from(&scratch, &source, &["--check"], &[]).expect_failure(
        1,
        &[
            "is not what the locked model and the pinned generator produce",
            "src/lib.rs",
        ],
    );
}

#[test]
fn a_missing_source_path_is_named() {
    let scratch = Scratch::with_generated();
    regen_from(
        &scratch,
        Path::new("/nonexistent/smithy-rs"),
        &["--check"],
        &[],
    )
    .expect_failure(
        1,
        &["--generator-source /nonexistent/smithy-rs: no such file or directory"],
    );
    scratch.assert_model_and_generated_untouched();
}

#[test]
fn a_directory_that_is_not_smithy_rs_is_refused() {
    let scratch = Scratch::with_generated();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "not smithy-rs").unwrap();
    regen_from(&scratch, dir.path(), &["--check"], &[])
        .expect_failure(1, &["is not a smithy-rs source tree", "no codegen-core/"]);
    scratch.assert_model_and_generated_untouched();
}

#[test]
fn a_truncated_or_non_gzip_archive_is_refused() {
    let scratch = Scratch::with_generated();
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(smithy_rs_source()).unwrap();
    let truncated = dir.path().join("truncated.tar.gz");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    regen_from(&scratch, &truncated, &["--check"], &[]).expect_failure(
        1,
        &["truncated.tar.gz is damaged (truncated or not a tar.gz)"],
    );
    let text = dir.path().join("source.tar.gz");
    std::fs::write(&text, "this is not gzip").unwrap();
    regen_from(&scratch, &text, &["--check"], &[])
        .expect_failure(1, &["source.tar.gz is neither a directory nor a gzip file"]);
    scratch.assert_model_and_generated_untouched();
}

#[test]
fn a_tree_of_another_codegen_version_is_refused() {
    let scratch = Scratch::with_generated();
    let dir = tempfile::tempdir().unwrap();
    let root = unpacked_source(dir.path());
    let properties = root.join("gradle.properties");
    let text = std::fs::read_to_string(&properties).unwrap();
    std::fs::write(
        &properties,
        text.replace("codegenVersion=0.1.25", "codegenVersion=0.1.26"),
    )
    .unwrap();
    regen_from(&scratch, &root, &["--check", "--generator-commit", COMMIT], &[]).expect_failure(
        1,
        &["is smithy-rs codegenVersion 0.1.26, but codegen/gradle.properties pins smithyRsCodegenVersion=0.1.25"],
    );
    scratch.assert_model_and_generated_untouched();
}

#[test]
fn a_directory_without_a_commit_needs_one_given() {
    let scratch = Scratch::with_generated();
    let dir = tempfile::tempdir().unwrap();
    let root = unpacked_source(dir.path());
    regen_from(&scratch, &root, &["--check"], &[]).expect_failure(
        1,
        &[
            "cannot tell which smithy-rs commit",
            "--generator-commit SHA",
        ],
    );
    scratch.assert_model_and_generated_untouched();
}

#[test]
fn a_source_that_does_not_compile_is_reported_and_nothing_is_cached() {
    let scratch = Scratch::with_generated();
    let dir = tempfile::tempdir().unwrap();
    let root = unpacked_source(dir.path());
    let file = root
        .join("codegen-core/src/main/kotlin/software/amazon/smithy/rust/codegen/core/Version.kt");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\nfun broken( {\n");
    std::fs::write(&file, text).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = regen_from(
        &scratch,
        &root,
        &["--check", "--generator-commit", COMMIT],
        &[("KVS_XTASK_CACHE_DIR", cache.path().to_str().unwrap())],
    );
    run.expect_failure(
        1,
        &[
            "the generator source does not compile",
            "Version.kt",
            "nothing was cached",
        ],
    );
    let generators = cache.path().join("smithy-rs-generator");
    let entries: Vec<_> = std::fs::read_dir(&generators)
        .map(|dir| dir.collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "{entries:?}");
    scratch.assert_model_and_generated_untouched();
}

#[test]
fn a_failing_fmt_step_fails_regen() {
    let scratch = Scratch::with_generated();
    // A `cargo` that fails `cargo fmt` (as it does without rustfmt or inside a workspace that
    // does not exclude the output) and passes everything else to the real one.
    let bin = tempfile::tempdir().unwrap();
    let real_cargo = xtask::toolchain::which("cargo").expect("cargo on PATH");
    let shim = bin.path().join("cargo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nif [ \"$1\" = fmt ]; then echo 'shim: no rustfmt' >&2; exit 1; fi\nexec {} \"$@\"\n",
            real_cargo.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    regen_from(
        &scratch,
        &smithy_rs_source(),
        &["--check"],
        &[("PATH", &path)],
    )
    .expect_failure(1, &["`cargo fmt` step failed"]);
    scratch.assert_model_and_generated_untouched();
}

/// The tree hash ([`xtask::tree::Tree::hash`]) of the crate the pinned generator makes with its
/// defaults from the locked model: `aws-sdk-kinesisvideowebrtcstorage` 1.109.0, whose `src/`,
/// `tests/`, `README.md` and `LICENSE` are byte for byte AWS's published 1.109.0 and whose
/// `Cargo.toml` is its `Cargo.toml.orig` without the `path` keys (compared file by file when it
/// was committed under that name, before the crate was published under ours).
const AWS_1_109_0_TREE_SHA256: &str =
    "f285c50c111454ac43a674bbb45e6f3582373049365111163ae2d3c6a9e57c13";

#[test]
fn with_the_generator_defaults_regen_reproduces_aws_crate_byte_for_byte() {
    // A copy whose lock names no crate: AWS's name and codegen/gradle.properties' version.
    let scratch = Scratch::new();
    let target = support::shared_target_dir();
    let model = scratch.path("model/kinesis-video-webrtc-storage-2018-05-10.json");
    let run = regen_from(
        &scratch,
        &smithy_rs_source(),
        &["--model-file", model.to_str().unwrap()],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    run.expect_success();
    assert!(
        run.stdout
            .contains("  crate:      aws-sdk-kinesisvideowebrtcstorage 1.109.0 (AWS's name"),
        "{}",
        run.stdout
    );
    let tree =
        xtask::tree::Tree::read(&scratch.path("generated/aws-sdk-kinesisvideowebrtcstorage"))
            .unwrap();
    assert_eq!(tree.files().len(), 57);
    assert_eq!(tree.hash(), AWS_1_109_0_TREE_SHA256);
    // The lock records no crate: the defaults.
    assert!(!scratch.read("model/model.lock.json").contains("\"crate\""));
}
