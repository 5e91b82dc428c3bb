//! Pulling the Smithy model and checking that it is the one this project generates.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::cli::RegenArgs;
use crate::fetch::fetch;
use crate::lock::{sha256_hex, GeneratorInput, ModelLock, ModelSourceRecord};
use crate::maven::Repositories;
use crate::model_transform::{self, GeneratorModel};
use crate::project::{MODEL_ARTIFACT, SERVICE_SHAPE_ID, SERVICE_VERSION};

/// Where `regen` takes the model from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The Maven artifact, at a given version or the newest one.
    Maven {
        /// `None` means the newest version listed in `maven-metadata.xml`.
        version: Option<String>,
    },
    /// A URL (JSON AST or jar).
    Url(String),
    /// A local file (JSON AST or jar).
    File(PathBuf),
    /// The model already locked in `model/` (what `--check` uses).
    Locked,
}

impl ModelSource {
    /// The source the flags ask for.
    pub fn from_args(args: &RegenArgs) -> Self {
        if args.check {
            ModelSource::Locked
        } else if let Some(url) = &args.model_url {
            ModelSource::Url(url.clone())
        } else if let Some(path) = &args.model_file {
            ModelSource::File(path.clone())
        } else {
            ModelSource::Maven {
                version: args.model_version.clone(),
            }
        }
    }
}

/// A model that was pulled and validated, ready to be locked.
#[derive(Debug, Clone)]
pub struct PulledModel {
    /// The Smithy JSON AST, byte for byte as pulled (extracted from the jar for jars).
    pub json: Vec<u8>,
    /// Where it came from.
    pub source: ModelSourceRecord,
    /// What validation found in it.
    pub summary: ModelSummary,
    /// The model the generator reads, after the recorded transformations.
    pub generator: GeneratorModel,
}

impl PulledModel {
    /// The lock that records this model, what the generator reads instead and why.
    /// `projection_transforms` are those of `codegen/smithy-build.json`.
    pub fn lock(&self, projection_transforms: &[String]) -> ModelLock {
        let mut lock = ModelLock::new(&self.json, self.source.clone());
        lock.generator_input = Some(GeneratorInput {
            sha256: self.generator.sha256.clone(),
            model_transforms: self.generator.applied.clone(),
            projection_transforms: projection_transforms.to_vec(),
        });
        lock
    }
}

/// Pulls the model from `source` and validates it.
///
/// `root` is the workspace root: a model file inside it is recorded by its relative path, one
/// outside by its file name, so that the lock holds no machine-local paths.
pub fn pull(
    source: &ModelSource,
    repos: &Repositories,
    locked: Option<(&Path, &ModelLock)>,
    root: &Path,
) -> anyhow::Result<PulledModel> {
    let (json, source) = match source {
        ModelSource::Maven { version } => {
            let (group, artifact) = MODEL_ARTIFACT;
            let version = match version {
                Some(version) => version.clone(),
                None => repos.newest_version(group, artifact)?.0,
            };
            let (jar, repository) = repos.download_jar(group, artifact, &version)?;
            let json = model_from_jar(&jar).with_context(|| {
                format!("{group}:{artifact}:{version} does not contain a usable Smithy model")
            })?;
            let source = ModelSourceRecord::Maven {
                repository: portable_repository(&repository),
                coordinates: format!("{group}:{artifact}:{version}"),
                version,
                jar_sha256: sha256_hex(&jar),
            };
            (json, source)
        }
        ModelSource::Url(url) => {
            let bytes = fetch(url).map_err(|err| model_unavailable(url, err))?;
            let json = json_or_jar(bytes).with_context(|| format!("the model at {url}"))?;
            (json, ModelSourceRecord::Url { url: url.clone() })
        }
        ModelSource::File(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the model file {}", path.display()))?;
            let json =
                json_or_jar(bytes).with_context(|| format!("the model file {}", path.display()))?;
            // Regenerating from the locked model file itself keeps its recorded provenance.
            let source = match locked {
                Some((locked_path, lock))
                    if same_file(path, locked_path) && lock.verify(&json).is_ok() =>
                {
                    lock.source.clone()
                }
                _ => ModelSourceRecord::File {
                    path: portable_path(path, root),
                },
            };
            (json, source)
        }
        ModelSource::Locked => {
            let (path, lock) = locked.context("no model is locked yet (model/model.lock.json is missing); run `cargo xtask regen` first")?;
            let json = std::fs::read(path)
                .with_context(|| format!("cannot read the locked model {}", path.display()))?;
            lock.verify(&json).with_context(|| {
                format!("{} does not match model/model.lock.json", path.display())
            })?;
            (json, lock.source.clone())
        }
    };
    let summary =
        validate(&json).with_context(|| format!("invalid model from {}", source.describe()))?;
    let generator = model_transform::apply(&json)?;
    Ok(PulledModel {
        json,
        source,
        summary,
        generator,
    })
}

/// A download failure of `--model-url`: exit code 3 (like an unavailable Maven artifact) when
/// the server cannot be reached or does not have the file, 1 for anything else.
fn model_unavailable(url: &str, err: crate::fetch::FetchError) -> anyhow::Error {
    use crate::fetch::FetchError;
    let unavailable = matches!(
        err,
        FetchError::Unreachable { .. } | FetchError::NotFound { .. } | FetchError::Status { .. }
    );
    let err = anyhow::Error::new(err);
    if unavailable {
        err.context(crate::GeneratorUnavailable {
            message: format!(
                "cannot download the model from {url}; check the URL and the network (proxy \
                 settings), or download it yourself and pass --model-file PATH"
            ),
        })
    } else {
        err.context(format!("cannot download the model from {url}"))
    }
}

/// How a model file is recorded in the lock: relative to the workspace root (with `/`) when it
/// is inside it, else by its file name.
pub fn portable_path(path: &Path, root: &Path) -> String {
    let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    match absolute.strip_prefix(&root) {
        Ok(relative) => relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string()),
    }
}

/// How a Maven repository is recorded in the lock: as given for http(s) repositories; a local
/// one (a directory or `file://`) is not named, as its path only means something on one machine.
fn portable_repository(repository: &str) -> String {
    if repository.starts_with("http://") || repository.starts_with("https://") {
        repository.to_string()
    } else {
        "a local Maven repository (--maven-repo)".to_string()
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// What [`validate`] learned about a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSummary {
    /// The `smithy` version of the AST.
    pub smithy_version: String,
    /// Operation shape ids of the service.
    pub operations: Vec<String>,
}

/// Checks that `json` is a Smithy 2.0 JSON AST with the service this project generates, at the
/// expected version.
pub fn validate(json: &[u8]) -> anyhow::Result<ModelSummary> {
    let ast: Value = serde_json::from_slice(json).map_err(|err| {
        anyhow::anyhow!(
            "the model is not JSON ({err}); expected a Smithy JSON AST such as \
             kinesis-video-webrtc-storage-2018-05-10.json"
        )
    })?;
    let Some(smithy_version) = ast.get("smithy").and_then(Value::as_str) else {
        bail!("the model is JSON but not a Smithy JSON AST: it has no \"smithy\" version member");
    };
    if !(smithy_version == "2" || smithy_version.starts_with("2.")) {
        bail!("the model is a Smithy {smithy_version} AST; this project needs Smithy 2.0");
    }
    let Some(shapes) = ast.get("shapes").and_then(Value::as_object) else {
        bail!("the Smithy model has no \"shapes\" object");
    };
    let services: Vec<String> = shapes
        .iter()
        .filter(|(_, shape)| shape.get("type").and_then(Value::as_str) == Some("service"))
        .map(|(id, shape)| {
            let version = shape
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("(no version)");
            format!("{id} {version}")
        })
        .collect();
    let Some(service) = shapes.get(SERVICE_SHAPE_ID) else {
        let found = if services.is_empty() {
            "no service shapes".to_string()
        } else {
            format!("services: {}", services.join(", "))
        };
        bail!("the Smithy model does not contain the service {SERVICE_SHAPE_ID} ({found}); is this the kinesis-video-webrtc-storage model?");
    };
    if service.get("type").and_then(Value::as_str) != Some("service") {
        bail!("{SERVICE_SHAPE_ID} is not a service shape in this model");
    }
    let version = service
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    if version != SERVICE_VERSION {
        bail!("{SERVICE_SHAPE_ID} has version {version}, but this project generates version {SERVICE_VERSION}");
    }
    let operations = service
        .get("operations")
        .and_then(Value::as_array)
        .map(|ops| {
            ops.iter()
                .filter_map(|op| op.get("target").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(ModelSummary {
        smithy_version: smithy_version.to_string(),
        operations,
    })
}

/// Returns the JSON AST inside `bytes`, which is either the AST itself or a model jar.
fn json_or_jar(bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    if bytes.starts_with(b"PK\x03\x04") {
        model_from_jar(&bytes)
    } else {
        Ok(bytes)
    }
}

/// Extracts the model from a Smithy model jar: the JSON files that
/// `META-INF/smithy/manifest` lists, of which the one containing the service is returned.
pub fn model_from_jar(jar: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(jar)).context("not a valid jar (zip) file")?;
    let manifest = read_entry(&mut archive, "META-INF/smithy/manifest")
        .context("the jar has no META-INF/smithy/manifest, so it is not a Smithy model jar")?;
    let manifest = String::from_utf8(manifest).context("META-INF/smithy/manifest is not UTF-8")?;
    let mut candidates = Vec::new();
    for entry in manifest
        .lines()
        .map(str::trim)
        .filter(|line| line.ends_with(".json"))
    {
        let json = read_entry(&mut archive, &format!("META-INF/smithy/{entry}"))?;
        if json
            .windows(SERVICE_SHAPE_ID.len())
            .any(|w| w == SERVICE_SHAPE_ID.as_bytes())
        {
            return Ok(json);
        }
        candidates.push(entry.to_string());
    }
    if candidates.is_empty() {
        bail!("META-INF/smithy/manifest lists no JSON model");
    }
    bail!(
        "none of the jar's models ({}) contains {SERVICE_SHAPE_ID}",
        candidates.join(", ")
    )
}

fn read_entry(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut entry = archive
        .by_name(name)
        .with_context(|| format!("the jar has no {name}"))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name} from the jar"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(version: &str) -> String {
        format!(
            r#"{{"smithy":"2.0","shapes":{{"{SERVICE_SHAPE_ID}":{{"type":"service","version":"{version}","operations":[{{"target":"a#Op"}}]}}}}}}"#
        )
    }

    #[test]
    fn model_files_are_recorded_without_machine_local_paths() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("model")).unwrap();
        let inside = root.path().join("model/m.json");
        std::fs::write(&inside, "{}").unwrap();
        assert_eq!(portable_path(&inside, root.path()), "model/m.json");
        let outside = tempfile::tempdir().unwrap();
        let file = outside.path().join("new-model.json");
        std::fs::write(&file, "{}").unwrap();
        assert_eq!(portable_path(&file, root.path()), "new-model.json");
        assert_eq!(
            portable_repository("file:///tmp/repo"),
            "a local Maven repository (--maven-repo)"
        );
        assert_eq!(
            portable_repository("https://repo1.maven.org/maven2"),
            "https://repo1.maven.org/maven2"
        );
    }

    #[test]
    fn accepts_the_service_at_its_version() {
        let summary = validate(model(SERVICE_VERSION).as_bytes()).unwrap();
        assert_eq!(summary.operations, ["a#Op"]);
        assert_eq!(summary.smithy_version, "2.0");
    }

    #[test]
    fn rejects_other_versions_and_services_and_non_json() {
        let err = validate(model("2020-01-01").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("has version 2020-01-01"), "{err}");
        let err =
            validate(br#"{"smithy":"2.0","shapes":{"a#S":{"type":"service","version":"1"}}}"#)
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("does not contain the service") && err.contains("a#S 1"),
            "{err}"
        );
        let err = validate(b"<html>").unwrap_err().to_string();
        assert!(err.contains("not JSON"), "{err}");
        let err = validate(br#"{"smithy":"1.0","shapes":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Smithy 1.0"), "{err}");
        let err = validate(br#"{"openapi":"3.0"}"#).unwrap_err().to_string();
        assert!(err.contains("not a Smithy JSON AST"), "{err}");
    }

    #[test]
    fn extracts_the_model_from_a_jar() {
        use std::io::Write as _;
        let mut jar = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        jar.start_file("META-INF/smithy/manifest", options).unwrap();
        jar.write_all(b"other.json\nkvs.json\n").unwrap();
        jar.start_file("META-INF/smithy/other.json", options)
            .unwrap();
        jar.write_all(br#"{"smithy":"2.0","shapes":{}}"#).unwrap();
        jar.start_file("META-INF/smithy/kvs.json", options).unwrap();
        jar.write_all(model(SERVICE_VERSION).as_bytes()).unwrap();
        let bytes = jar.finish().unwrap().into_inner();
        assert_eq!(
            json_or_jar(bytes).unwrap(),
            model(SERVICE_VERSION).as_bytes()
        );
    }

    #[test]
    fn a_jar_without_manifest_is_rejected() {
        let jar = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()))
            .finish()
            .unwrap()
            .into_inner();
        let err = format!("{:#}", model_from_jar(&jar).unwrap_err());
        assert!(err.contains("not a Smithy model jar"), "{err}");
    }
}
