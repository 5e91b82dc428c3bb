//! `cargo xtask regen` refuses bad input and missing tools with a clear error and a non-zero
//! exit code, before the generator runs, and leaves the workspace untouched.

mod support;

use std::path::Path;

use support::{metadata, model_jar, publish, FileServer, Scratch};

const MODEL: &str = "model/kinesis-video-webrtc-storage-2018-05-10.json";
const LOCK: &str = "model/model.lock.json";

fn assert_untouched(scratch: &Scratch) {
    let root = support::workspace_root();
    assert_eq!(
        scratch.read(MODEL),
        std::fs::read_to_string(root.join(MODEL)).unwrap()
    );
    // The scratch's lock is the committed one without its crate (the generator's defaults).
    let mut lock = xtask::lock::ModelLock::read(&root.join(LOCK))
        .unwrap()
        .unwrap();
    lock.krate = None;
    assert_eq!(scratch.read(LOCK), lock.to_json());
    for name in ["aws-sdk-kinesisvideowebrtcstorage", "kvs_sdk_x"] {
        assert!(!scratch.path(&format!("generated/{name}")).exists());
    }
    assert!(!scratch.path("generated/.staging").exists());
}

#[test]
fn a_model_file_that_is_not_json_is_rejected() {
    let scratch = Scratch::new();
    scratch.write("bad.json", "<html>not a model</html>");
    let run = scratch.regen(
        &["--model-file", scratch.path("bad.json").to_str().unwrap()],
        &[],
    );
    run.expect_failure(1, &["bad.json", "not JSON"]);
    assert_untouched(&scratch);
}

#[test]
fn a_model_without_the_service_is_rejected() {
    let scratch = Scratch::new();
    scratch.write(
        "other.json",
        r#"{"smithy":"2.0","shapes":{"com.example#Weather":{"type":"service","version":"2006-03-01"}}}"#,
    );
    let run = scratch.regen(
        &["--model-file", scratch.path("other.json").to_str().unwrap()],
        &[],
    );
    run.expect_failure(
        1,
        &[
            "does not contain the service",
            "AWSAcuityRoutingServiceLambda",
            "com.example#Weather 2006-03-01",
        ],
    );
    assert_untouched(&scratch);
}

#[test]
fn a_model_with_another_service_version_is_rejected() {
    let scratch = Scratch::new();
    let model = std::fs::read_to_string(support::workspace_root().join(MODEL)).unwrap();
    scratch.write(
        "newer.json",
        &model.replacen(
            "\"version\": \"2018-05-10\"",
            "\"version\": \"2030-01-01\"",
            1,
        ),
    );
    let run = scratch.regen(
        &["--model-file", scratch.path("newer.json").to_str().unwrap()],
        &[],
    );
    run.expect_failure(
        1,
        &["has version 2030-01-01", "generates version 2018-05-10"],
    );
    assert_untouched(&scratch);
}

#[test]
fn a_missing_model_file_is_named() {
    let scratch = Scratch::new();
    let run = scratch.regen(&["--model-file", "/nonexistent/model.json"], &[]);
    run.expect_failure(1, &["cannot read the model file /nonexistent/model.json"]);
}

#[test]
fn no_java_is_reported_before_gradle_runs() {
    let scratch = Scratch::new();
    let empty_path = tempfile::tempdir().unwrap();
    let run = scratch.regen(
        &["--model-file", scratch.path(MODEL).to_str().unwrap()],
        &[
            ("PATH", empty_path.path().to_str().unwrap()),
            ("JAVA_HOME", ""),
        ],
    );
    run.expect_failure(1, &["Java not found", "JAVA_HOME"]);
    assert_untouched(&scratch);
}

#[test]
fn a_java_home_without_java_is_reported() {
    let scratch = Scratch::new();
    let run = scratch.regen(
        &["--model-file", scratch.path(MODEL).to_str().unwrap()],
        &[("JAVA_HOME", "/nonexistent/jdk")],
    );
    run.expect_failure(1, &["JAVA_HOME is /nonexistent/jdk"]);
}

#[test]
fn no_gradle_is_reported() {
    let scratch = Scratch::new();
    let bin = tempfile::tempdir().unwrap();
    let java = xtask::toolchain::which("java").expect("tests need java on PATH");
    std::os::unix::fs::symlink(java, bin.path().join("java")).unwrap();
    let run = scratch.regen(
        &["--model-file", scratch.path(MODEL).to_str().unwrap()],
        &[("PATH", bin.path().to_str().unwrap()), ("JAVA_HOME", "")],
    );
    run.expect_failure(
        1,
        &["Gradle not found", "apt-get install -y gradle", "GRADLE="],
    );
    assert_untouched(&scratch);

    let run = scratch.regen(
        &["--model-file", scratch.path(MODEL).to_str().unwrap()],
        &[("GRADLE", "/nonexistent/gradle")],
    );
    run.expect_failure(1, &["GRADLE is set to /nonexistent/gradle"]);
    assert_untouched(&scratch);
}

#[test]
fn an_unreachable_maven_repository_is_reported_as_unavailable() {
    let scratch = Scratch::new();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = scratch.regen(
        &["--maven-repo", &format!("http://127.0.0.1:{port}/maven2")],
        &[],
    );
    run.expect_failure(
        3,
        &[
            "cannot reach the Maven repository",
            "software.amazon.api.models:kinesis-video-webrtc-storage",
        ],
    );
    assert_untouched(&scratch);
}

#[test]
fn an_unknown_model_version_lists_the_available_ones() {
    let scratch = Scratch::new();
    let repo = tempfile::tempdir().unwrap();
    let model = std::fs::read(support::workspace_root().join(MODEL)).unwrap();
    publish_model(repo.path(), &["1.0.0", "1.0.1"], &model);
    let server = FileServer::serve(repo.path().to_path_buf());
    for repo_url in [server.url(), format!("file://{}", repo.path().display())] {
        let run = scratch.regen(
            &["--model-version", "9.9.9", "--maven-repo", &repo_url],
            &[],
        );
        run.expect_failure(
            1,
            &[
                "unknown model version 9.9.9",
                "versions available: 1.0.0, 1.0.1",
            ],
        );
        assert_untouched(&scratch);
    }
}

#[test]
fn a_repository_without_the_model_artifact_is_reported_as_unavailable() {
    let scratch = Scratch::new();
    let repo = tempfile::tempdir().unwrap();
    let server = FileServer::serve(repo.path().to_path_buf());
    let run = scratch.regen(&["--maven-repo", &server.url()], &[]);
    run.expect_failure(
        3,
        &[
            "kinesis-video-webrtc-storage is not published in",
            &server.url(),
        ],
    );
    assert_untouched(&scratch);
}

#[test]
fn a_model_jar_without_the_service_is_rejected() {
    let scratch = Scratch::new();
    let repo = tempfile::tempdir().unwrap();
    publish_model(repo.path(), &["1.0.0"], br#"{"smithy":"2.0","shapes":{}}"#);
    let run = scratch.regen(&["--maven-repo", repo.path().to_str().unwrap()], &[]);
    run.expect_failure(
        1,
        &[
            "does not contain a usable Smithy model",
            "contains com.amazonaws.kinesisvideowebrtcstorage",
        ],
    );
    assert_untouched(&scratch);
}

#[test]
fn an_unreachable_or_missing_model_url_exits_3() {
    let scratch = Scratch::new();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/model.json");
    scratch
        .regen(&["--model-url", &url], &[])
        .expect_failure(3, &["cannot download the model from", &url, "--model-file"]);
    assert_untouched(&scratch);
    // Reachable, but the file is not there: also not obtainable.
    let empty = tempfile::tempdir().unwrap();
    let server = FileServer::serve(empty.path().to_path_buf());
    let url = format!("{}/model.json", server.url());
    scratch
        .regen(&["--model-url", &url], &[])
        .expect_failure(3, &["cannot download the model from", &url]);
    assert_untouched(&scratch);
}

#[test]
fn an_edited_model_names_the_flag_that_uses_it() {
    let scratch = Scratch::with_generated();
    let model = scratch.read(MODEL);
    scratch.write(MODEL, &model.replacen("webrtc", "WebRTC", 1));
    scratch.regen(&["--check"], &[]).expect_failure(
        1,
        &[
            "model/ does not match its lock",
            "cargo xtask regen --model-file model/kinesis-video-webrtc-storage-2018-05-10.json",
        ],
    );
}

#[test]
fn a_crate_name_the_generator_cannot_document_is_refused() {
    let scratch = Scratch::new();
    scratch
        .regen(
            &["--crate-name", "kvs-sdk-x", "--crate-version", "1.0.0"],
            &[],
        )
        .expect_failure(1, &["use `_` instead of `-`", "kvs_sdk_x"]);
    scratch
        .regen(
            &["--crate-name", "kvs_sdk_x", "--crate-version", "1.0"],
            &[],
        )
        .expect_failure(1, &["--crate-version 1.0 is not a version"]);
    assert_untouched(&scratch);
}

#[test]
fn conflicting_flags_are_refused() {
    let scratch = Scratch::new();
    let run = scratch.regen(
        &["--check", "--model-url", "http://127.0.0.1:1/x.json"],
        &[],
    );
    run.expect_failure(2, &["cannot be used with"]);
}

fn publish_model(repo: &Path, versions: &[&str], model: &[u8]) {
    let (group, artifact) = xtask::project::MODEL_ARTIFACT;
    for version in versions {
        publish(repo, group, artifact, version, &model_jar(model));
    }
    metadata(repo, group, artifact, versions);
}
