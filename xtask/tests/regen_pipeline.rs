//! The whole `cargo xtask regen` pipeline: Gradle resolves the generator from a Maven
//! repository, the real Smithy CLI validates the model and runs the `rust-client-codegen` plugin,
//! and xtask swaps, checks, stamps and summarizes. The smithy-rs generator itself is replaced by
//! a small stand-in plugin (tests/fixtures/fake-generator) so that these tests can run where
//! Maven Central does not serve smithy-rs; smithy and its dependencies come from Maven Central.
//!
//! Needs Java, Gradle and Maven Central, like `cargo xtask regen` itself.

mod support;

use support::{fake_generator_repo, metadata, model_jar, publish, FileServer, Scratch};

const CRATE: &str = "generated/aws-sdk-kinesisvideowebrtcstorage";
const MODEL: &str = "model/kinesis-video-webrtc-storage-2018-05-10.json";

/// The committed bootstrap model minus the four "ISO partition + DualStack must fail" endpoint
/// tests, as AWS's later revisions of the model are: xtask's recorded transformation then has
/// nothing to remove, and the model is recorded as a plain file source.
fn current_model(scratch: &Scratch) -> std::path::PathBuf {
    let text = scratch.read(MODEL);
    let mut ast: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = ast["shapes"][xtask::project::SERVICE_SHAPE_ID]["traits"]
        ["smithy.rules#endpointTests"]["testCases"]
        .as_array_mut()
        .unwrap();
    let before = cases.len();
    cases.retain(|case| {
        let region = case["params"]["Region"].as_str().unwrap_or("");
        !(region.starts_with("us-iso") && case["params"]["UseDualStack"] == true)
    });
    assert_eq!(before - cases.len(), 4);
    let path = scratch.path("current-model.json");
    std::fs::write(&path, serde_json::to_string_pretty(&ast).unwrap()).unwrap();
    path
}

/// `--maven-repo` flags: the stand-in generator first, then Maven Central for smithy.
fn repos() -> Vec<String> {
    vec![
        "--maven-repo".into(),
        format!("file://{}", fake_generator_repo().display()),
        "--maven-repo".into(),
        xtask::maven::MAVEN_CENTRAL.into(),
    ]
}

fn regen(scratch: &Scratch, extra: &[&str]) -> support::Run {
    let repos = repos();
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(repos.iter().map(String::as_str));
    scratch.regen(&args, &[])
}

#[test]
fn regen_then_check_then_drift_is_caught() {
    let scratch = Scratch::new();
    let model = current_model(&scratch);
    let run = regen(&scratch, &["--model-file", model.to_str().unwrap()]);
    run.expect_success();
    // The generator saw the model: one function per operation.
    let lib = scratch.read(&format!("{CRATE}/src/lib.rs"));
    assert!(
        lib.contains("pub fn join_storage_session()")
            && lib.contains("pub fn join_storage_session_as_viewer()"),
        "{lib}"
    );
    // Summary: source, sha, versions, files and API items.
    for fragment in [
        "model:      file ",
        &format!(
            "sha256 {}",
            xtask::lock::sha256_hex(&std::fs::read(&model).unwrap())
        ),
        "codegen:    smithy-rs 0.1.25",
        "files:      2 added, 0 changed, 0 removed",
        "crate:      aws-sdk-kinesisvideowebrtcstorage 1.109.0 (AWS's name",
        "public API: first generation (nothing to compare with)",
    ] {
        let fragment: &str = fragment;
        assert!(
            run.stdout.contains(fragment),
            "summary lacks {fragment:?}:\n{}",
            run.stdout
        );
    }
    let lock = scratch.read("model/model.lock.json");
    assert!(lock.contains("\"kind\": \"file\""), "{lock}");
    assert!(scratch
        .read("generated/regen-stamp.json")
        .contains("\"smithyRsCodegenVersion\": \"0.1.25\""));
    assert!(!scratch.path("generated/.staging").exists());

    // Reproducible: --check regenerates and finds no difference.
    regen(&scratch, &["--check"]).expect_success();

    // A hand edit is caught before anything runs.
    let lib_path = format!("{CRATE}/src/lib.rs");
    scratch.write(&lib_path, &format!("{lib}// edited\n"));
    regen(&scratch, &["--check"]).expect_failure(1, &["was edited after generation"]);
    scratch.write(&lib_path, &lib);

    // A generator setting change is caught: the default crate version no longer matches the
    // workspace dependency, and once that is changed too, by regenerating, with a readable diff.
    let properties = scratch.read("codegen/gradle.properties");
    scratch.write(
        "codegen/gradle.properties",
        &properties.replace("moduleVersion=1.109.0", "moduleVersion=1.110.0"),
    );
    regen(&scratch, &["--check"]).expect_failure(
        1,
        &["names package aws-sdk-kinesisvideowebrtcstorage at generated/aws-sdk-kinesisvideowebrtcstorage version 1.109.0, but the generated crate is aws-sdk-kinesisvideowebrtcstorage 1.110.0"],
    );
    let manifest = scratch.read("Cargo.toml");
    scratch.write(
        "Cargo.toml",
        &manifest.replace("version = \"1.109.0\"", "version = \"1.110.0\""),
    );
    let run = regen(&scratch, &["--check"]);
    run.expect_failure(
        1,
        &[
            "is not what the locked model and the pinned generator produce",
            "changed: Cargo.toml",
            "-version = \"1.109.0\"",
            "+version = \"1.110.0\"",
        ],
    );
    assert!(
        scratch
            .read(&format!("{CRATE}/Cargo.toml"))
            .contains("1.109.0"),
        "--check must not change generated/"
    );
}

#[test]
fn a_model_the_generator_rejects_leaves_everything_untouched() {
    let scratch = Scratch::new();
    let committed = scratch.read(MODEL);
    // A dangling shape reference: the right service, but not a valid Smithy model.
    let model = std::fs::read_to_string(current_model(&scratch)).unwrap();
    let broken = model.replace(
        "\"target\": \"com.amazonaws.kinesisvideowebrtcstorage#JoinStorageSessionInput\"",
        "\"target\": \"com.amazonaws.kinesisvideowebrtcstorage#NoSuchShape\"",
    );
    assert_ne!(broken, model);
    scratch.write("broken.json", &broken);
    let run = regen(
        &scratch,
        &[
            "--model-file",
            scratch.path("broken.json").to_str().unwrap(),
        ],
    );
    run.expect_failure(
        1,
        &[
            "the generator rejected the model (1 error event(s))",
            "Target.UnresolvedShape",
            "NoSuchShape",
        ],
    );
    assert_eq!(scratch.read(MODEL), committed);
    assert!(!scratch.path(CRATE).exists());
}

#[test]
fn a_crate_that_does_not_build_is_rolled_back() {
    let scratch = Scratch::new();
    let model = current_model(&scratch);
    regen(&scratch, &["--model-file", model.to_str().unwrap()]).expect_success();
    let before = xtask::tree::Tree::read(&scratch.path(CRATE)).unwrap();
    let stamp = scratch.read("generated/regen-stamp.json");
    let properties = scratch.read("codegen/gradle.properties");
    // The stand-in generator emits compile_error! for a "-broken" version.
    scratch.write(
        "codegen/gradle.properties",
        &properties.replace("moduleVersion=1.109.0", "moduleVersion=1.109.0-broken"),
    );
    let run = regen(&scratch, &["--model-file", model.to_str().unwrap()]);
    run.expect_failure(1, &["does not build", "was left unchanged"]);
    assert_eq!(
        xtask::tree::Tree::read(&scratch.path(CRATE)).unwrap(),
        before
    );
    assert_eq!(scratch.read("generated/regen-stamp.json"), stamp);
    assert!(!scratch.path("generated/.staging").exists());
}

#[test]
fn the_newest_model_is_pulled_from_a_maven_repository_over_http() {
    let scratch = Scratch::new();
    let repo = tempfile::tempdir().unwrap();
    let model = std::fs::read(current_model(&scratch)).unwrap();
    let (group, artifact) = xtask::project::MODEL_ARTIFACT;
    // 1.0.0 is a different (older) revision; 1.0.1 is the newest.
    let older = String::from_utf8(model.clone())
        .unwrap()
        .replace("<fullname>webrtc</fullname>", "<fullname>old</fullname>");
    publish(
        repo.path(),
        group,
        artifact,
        "1.0.0",
        &model_jar(older.as_bytes()),
    );
    publish(repo.path(), group, artifact, "1.0.1", &model_jar(&model));
    metadata(repo.path(), group, artifact, &["1.0.0", "1.0.1"]);
    let server = FileServer::serve(repo.path().to_path_buf());
    let repos = repos();
    let mut args = vec!["--maven-repo", server.url().leak() as &str];
    args.extend(repos.iter().map(String::as_str));
    let run = scratch.regen(&args, &[]);
    run.expect_success();
    let lock = scratch.read("model/model.lock.json");
    assert!(
        lock.contains(
            "\"coordinates\": \"software.amazon.api.models:kinesis-video-webrtc-storage:1.0.1\""
        ),
        "{lock}"
    );
    assert!(lock.contains("\"jarSha256\""), "{lock}");
    assert_eq!(std::fs::read(scratch.path(MODEL)).unwrap(), model);
    assert!(run.stdout.contains("version 1.0.1"), "{}", run.stdout);
}

#[test]
fn a_repository_without_the_generator_is_reported_as_unavailable() {
    let scratch = Scratch::new();
    let empty = tempfile::tempdir().unwrap();
    let model = current_model(&scratch);
    let run = scratch.regen(
        &[
            "--model-file",
            model.to_str().unwrap(),
            "--maven-repo",
            &format!("file://{}", empty.path().display()),
        ],
        &[],
    );
    run.expect_failure(
        3,
        &[
            "the generator's artifacts could not be resolved",
            "software.amazon.smithy.rust:codegen-client:0.1.25",
        ],
    );
    assert!(!scratch.path(CRATE).exists());
}
