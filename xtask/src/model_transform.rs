//! The recorded changes between the model in `model/` (byte for byte what was pulled) and the
//! model the generator reads.
//!
//! There is one: Smithy 1.73's partition data gives the ISO partitions dual-stack, so its
//! endpoint-rules validator rejects the four endpoint tests "us-iso(b)-east-1 with DualStack →
//! error" that older revisions of this service's model carry. AWS removed exactly those four from
//! later revisions (the published crate has 21 endpoint tests). Validation runs on the imported
//! model, so they must be absent from the file Smithy reads; nothing can suppress them.
//!
//! The other difference from the published crate's inputs, the BDD endpoint resolver, is a
//! Smithy projection transform (`compileBdd` in `codegen/smithy-build.json`; it leaves a model
//! that already carries `smithy.rules#endpointBdd` alone) and so needs no change to the model.
//!
//! `model/model.lock.json` records what [`apply`] removed and the sha256 of the result, and
//! `regen --check` recomputes both, so `model/` never silently differs from its source.

use anyhow::Context as _;
use serde_json::Value;

use crate::lock::{sha256_hex, AppliedTransform};
use crate::project::SERVICE_SHAPE_ID;

/// Name of the one transformation, as recorded in the lock.
pub const REMOVE_ISO_DUALSTACK_TESTS: &str = "removeIsoDualStackEndpointTests";

/// Why it is applied, as recorded in the lock.
pub const REMOVE_ISO_DUALSTACK_TESTS_WHY: &str =
    "Smithy 1.73's partitions give the ISO partitions dual-stack, so its validator rejects \
     endpoint tests that expect an error for us-iso(b) regions with UseDualStack; AWS removed \
     exactly these test cases from later revisions of the model";

/// The model the generator reads.
#[derive(Debug, Clone)]
pub struct GeneratorModel {
    /// The Smithy JSON AST after the transformations.
    pub json: Vec<u8>,
    /// What was changed (empty when the model needed nothing).
    pub applied: Vec<AppliedTransform>,
    /// sha256 of [`GeneratorModel::json`].
    pub sha256: String,
}

/// Applies the recorded transformations to the pulled model `json`.
pub fn apply(json: &[u8]) -> anyhow::Result<GeneratorModel> {
    let mut ast: Value = serde_json::from_slice(json).context("the model is not JSON")?;
    let mut applied = Vec::new();
    let removed = remove_iso_dualstack_tests(&mut ast);
    if !removed.is_empty() {
        applied.push(AppliedTransform {
            name: REMOVE_ISO_DUALSTACK_TESTS.to_string(),
            why: REMOVE_ISO_DUALSTACK_TESTS_WHY.to_string(),
            removed_test_cases: removed,
        });
    }
    let json = if applied.is_empty() {
        json.to_vec()
    } else {
        let mut text = serde_json::to_string_pretty(&ast).expect("a JSON value serializes");
        text.push('\n');
        text.into_bytes()
    };
    let sha256 = sha256_hex(&json);
    Ok(GeneratorModel {
        json,
        applied,
        sha256,
    })
}

/// Removes endpoint test cases for an ISO region with `UseDualStack: true` that expect an
/// error; returns their documentation strings.
fn remove_iso_dualstack_tests(ast: &mut Value) -> Vec<String> {
    let Some(cases) = ast
        .pointer_mut(&format!(
            "/shapes/{}/traits/smithy.rules#endpointTests/testCases",
            SERVICE_SHAPE_ID.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_array_mut)
    else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    cases.retain(|case| {
        let region = case
            .pointer("/params/Region")
            .and_then(Value::as_str)
            .unwrap_or("");
        let is_iso = region.starts_with("us-iso-") || region.starts_with("us-isob-");
        let dual_stack = case.pointer("/params/UseDualStack") == Some(&Value::Bool(true));
        let expects_error = case.pointer("/expect/error").is_some();
        if is_iso && dual_stack && expects_error {
            removed.push(
                case.get("documentation")
                    .and_then(Value::as_str)
                    .unwrap_or("(undocumented test case)")
                    .to_string(),
            );
            false
        } else {
            true
        }
    });
    removed
}

/// The projection transforms of `codegen/smithy-build.json`, each as
/// `name (codegen/smithy-build.json)`, for the lock.
pub fn projection_transforms(codegen_dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let path = codegen_dir.join("smithy-build.json");
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let transforms = config
        .pointer(&format!(
            "/projections/{}/transforms",
            crate::project::PROJECTION
        ))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    transforms
        .iter()
        .map(|transform| {
            transform
                .get("name")
                .and_then(Value::as_str)
                .map(|name| format!("{name} (codegen/smithy-build.json)"))
                .with_context(|| format!("a transform in {} has no name", path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(cases: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "smithy": "2.0",
            "shapes": { SERVICE_SHAPE_ID: { "type": "service", "traits": {
                "smithy.rules#endpointTests": { "version": "1.0", "testCases": cases }
            }}}
        }))
        .unwrap()
    }

    fn case(doc: &str, region: &str, dual_stack: bool, error: bool) -> Value {
        let expect = if error {
            serde_json::json!({"error": "DualStack is enabled but this partition does not support DualStack"})
        } else {
            serde_json::json!({"endpoint": {"url": "https://example.com"}})
        };
        serde_json::json!({
            "documentation": doc,
            "expect": expect,
            "params": {"Region": region, "UseFIPS": false, "UseDualStack": dual_stack}
        })
    }

    #[test]
    fn removes_only_iso_dualstack_error_cases() {
        let json = model(serde_json::json!([
            case("iso dual", "us-iso-east-1", true, true),
            case("isob dual", "us-isob-east-1", true, true),
            case("iso plain", "us-iso-east-1", false, false),
            case("commercial dual", "us-east-1", true, true),
            case("iso dual endpoint", "us-iso-east-1", true, false),
        ]));
        let out = apply(&json).unwrap();
        assert_eq!(out.applied.len(), 1);
        assert_eq!(out.applied[0].name, REMOVE_ISO_DUALSTACK_TESTS);
        assert_eq!(out.applied[0].removed_test_cases, ["iso dual", "isob dual"]);
        let ast: Value = serde_json::from_slice(&out.json).unwrap();
        let left: Vec<&str> = ast["shapes"][SERVICE_SHAPE_ID]["traits"]
            ["smithy.rules#endpointTests"]["testCases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|case| case["documentation"].as_str().unwrap())
            .collect();
        assert_eq!(left, ["iso plain", "commercial dual", "iso dual endpoint"]);
        assert_eq!(out.sha256, sha256_hex(&out.json));
    }

    #[test]
    fn a_model_that_needs_nothing_is_passed_through_byte_for_byte() {
        let json = model(serde_json::json!([case(
            "plain",
            "us-east-1",
            false,
            false
        )]));
        let out = apply(&json).unwrap();
        assert!(out.applied.is_empty());
        assert_eq!(out.json, json);
    }

    #[test]
    fn the_committed_model_loses_exactly_the_four_known_cases() {
        let json = std::fs::read(crate::project::Project::locate().unwrap().model_file()).unwrap();
        let out = apply(&json).unwrap();
        let removed = &out.applied[0].removed_test_cases;
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert!(removed.iter().all(|doc| doc.contains("DualStack enabled")));
    }
}
