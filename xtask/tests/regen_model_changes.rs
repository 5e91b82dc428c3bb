//! A model change is reported completely: three hand-made changes to the locked model, each run
//! through `cargo xtask regen` with the real generator (built from the pinned smithy-rs source)
//! in a copy of the whole workspace, one after the other:
//!
//! 1. an optional member added to `JoinStorageSessionInput`: the field, its getter and the
//!    setters and getters of both builders (8 items) are listed, the change is additive, regen
//!    exits 0 and suggests the next minor version;
//! 2. a member added to `AccessDeniedException` (an error): likewise;
//! 3. `JoinStorageSessionAsViewer` removed: every removed item is listed, among them
//!    `Client::join_storage_session_as_viewer`, the change is breaking, `kvs-webrtc-discovery`
//!    (which calls that method) is named as no longer compiling, regen exits 4 and leaves the new
//!    crate in place, and suggests the next major version.
//!
//! Needs what `regen --generator-source` needs (Java, Gradle, Maven Central, the pinned source
//! archive). The copy builds into the workspace's target directory, so only the crates of the
//! copy itself compile; the whole test takes a few minutes on two cores.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{shared_target_dir, smithy_rs_source, Run, Scratch};

const MODEL: &str = "model/kinesis-video-webrtc-storage-2018-05-10.json";
const NS: &str = "com.amazonaws.kinesisvideowebrtcstorage#";
const CRATE: &str = "generated/kvs_sdk_kinesisvideowebrtcstorage";

/// The scratch's current model changed by `edit`, written beside it; returns its path.
fn changed_model(scratch: &Scratch, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut ast: Value = serde_json::from_str(&scratch.read(MODEL)).unwrap();
    edit(&mut ast["shapes"]);
    let path = scratch.path(name);
    std::fs::write(&path, serde_json::to_string_pretty(&ast).unwrap()).unwrap();
    path
}

fn regen(scratch: &Scratch, model: &Path) -> Run {
    let source = smithy_rs_source();
    let target = shared_target_dir();
    let run = scratch.regen(
        &[
            "--model-file",
            model.to_str().unwrap(),
            "--generator-source",
            source.to_str().unwrap(),
        ],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    eprintln!(
        "--- cargo xtask regen --model-file {}\n{}{}",
        model.display(),
        run.stdout,
        run.stderr
    );
    run
}

fn assert_lines(run: &Run, lines: &[&str]) {
    for line in lines {
        assert!(
            run.stdout.lines().any(|l| l.trim_end() == *line),
            "the summary lacks the line {line:?}:\n{}",
            run.stdout
        );
    }
}

fn count_of(run: &Run, prefix: &str) -> usize {
    run.stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(prefix))
        .count()
}

#[test]
fn three_model_changes_are_reported_completely_with_the_right_exit_code() {
    let scratch = Scratch::full();
    let op = "operation::join_storage_session";
    let input = format!("{op}::JoinStorageSessionInput");
    let builder = format!("{op}::builders::JoinStorageSessionInputBuilder");
    let fluent = format!("{op}::builders::JoinStorageSessionFluentBuilder");

    // 1. An optional member of an operation's input.
    let model = changed_model(&scratch, "model-1.json", |shapes| {
        shapes[format!("{NS}JoinStorageSessionInput")]["members"]["clientTag"] = json!({
            "target": "smithy.api#String",
            "traits": {"smithy.api#documentation": "<p>A tag for the session.</p>"}
        });
    });
    let run = regen(&scratch, &model);
    run.expect_success();
    assert_lines(
        &run,
        &[
            "  public API: 8 added, 0 removed, 0 changed: additive, not breaking (rustdoc JSON)",
            &format!("              + field {input}::client_tag: Option<String>"),
            &format!("              + method {input}::client_tag(&self) -> Option<&str>"),
            &format!("              + method {builder}::client_tag(self, input: impl Into<String>) -> Self"),
            &format!("              + method {builder}::set_client_tag(self, input: Option<String>) -> Self"),
            &format!("              + method {builder}::get_client_tag(&self) -> &Option<String>"),
            &format!("              + method {fluent}::client_tag(self, input: impl Into<String>) -> Self"),
            &format!("              + method {fluent}::set_client_tag(self, input: Option<String>) -> Self"),
            &format!("              + method {fluent}::get_client_tag(&self) -> &Option<String>"),
            "  version:    1.0.0 is not enough: this change needs 1.1.0 (the next version after 1.0.0); regenerate with --crate-version 1.1.0 before publishing",
            "  workspace:  every package compiles against the new crate",
        ],
    );
    assert_eq!(count_of(&run, "+ "), 8, "{}", run.stdout);
    assert!(scratch
        .read(&format!(
            "{CRATE}/src/operation/join_storage_session/_join_storage_session_input.rs"
        ))
        .contains("pub client_tag:"));

    // 2. A member of an error structure.
    let model = changed_model(&scratch, "model-2.json", |shapes| {
        shapes[format!("{NS}AccessDeniedException")]["members"]["reason"] =
            json!({"target": "smithy.api#String"});
    });
    let run = regen(&scratch, &model);
    run.expect_success();
    let error = "types::error::AccessDeniedException";
    let error_builder = "types::error::builders::AccessDeniedExceptionBuilder";
    assert_lines(
        &run,
        &[
            &format!("              + field {error}::reason: Option<String>"),
            &format!("              + method {error}::reason(&self) -> Option<&str>"),
            &format!("              + method {error_builder}::reason(self, input: impl Into<String>) -> Self"),
            &format!("              + method {error_builder}::set_reason(self, input: Option<String>) -> Self"),
            &format!("              + method {error_builder}::get_reason(&self) -> &Option<String>"),
            "  workspace:  every package compiles against the new crate",
        ],
    );
    assert!(
        run.stdout
            .contains("0 removed, 0 changed: additive, not breaking"),
        "{}",
        run.stdout
    );

    // 3. An operation removed.
    let model = changed_model(&scratch, "model-3.json", |shapes| {
        let service = &mut shapes[format!("{NS}AWSAcuityRoutingServiceLambda")];
        service["operations"]
            .as_array_mut()
            .unwrap()
            .retain(|o| o["target"] != format!("{NS}JoinStorageSessionAsViewer"));
        let shapes = shapes.as_object_mut().unwrap();
        shapes.remove(&format!("{NS}JoinStorageSessionAsViewer"));
        shapes.remove(&format!("{NS}JoinStorageSessionAsViewerInput"));
    });
    let run = regen(&scratch, &model);
    run.expect_failure(
        4,
        &[
            "hand-written crates no longer compile: kvs-webrtc-discovery",
            "changed incompatibly",
            "--crate-version 2.0.0",
            "--allow-breaking",
        ],
    );
    assert_lines(
        &run,
        &[
            "              - method Client::join_storage_session_as_viewer(&self) -> crate::operation::join_storage_session_as_viewer::builders::JoinStorageSessionAsViewerFluentBuilder",
            "              - mod operation::join_storage_session_as_viewer",
            "              kvs-webrtc-discovery:",
        ],
    );
    assert!(
        run.stdout.contains(
            "              - #[non_exhaustive] struct operation::join_storage_session_as_viewer::JoinStorageSessionAsViewerInput (fields) [auto: "
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("0 added, ") && run.stdout.contains("removed, 0 changed: BREAKING"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("error[E0599]: no method named `join_storage_session_as_viewer`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  version:    1.0.0 is not enough: this change needs 2.0.0"),
        "{}",
        run.stdout
    );
    // The new crate stays for the maintainer to fix the hand-written code against.
    assert!(!scratch
        .path(&format!(
            "{CRATE}/src/operation/join_storage_session_as_viewer"
        ))
        .exists());
    let lock = scratch.read("model/model.lock.json");
    assert!(
        lock.contains("\"path\": \"model-3.json\""),
        "a model file is recorded relative to the workspace:\n{lock}"
    );
}
