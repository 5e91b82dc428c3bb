//! Running the Gradle build in `codegen/` and turning its failures into actionable errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::maven::Repositories;
use crate::GeneratorUnavailable;

/// The generator pins from `codegen/gradle.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorPins {
    /// smithy-rs codegen release.
    pub smithy_rs_codegen_version: String,
    /// smithy release that codegen was built against.
    pub smithy_version: String,
    /// Version written into the generated crate.
    pub module_version: String,
}

impl GeneratorPins {
    /// Reads the pins from `codegen/gradle.properties`.
    pub fn read(codegen_dir: &Path) -> anyhow::Result<Self> {
        let path = codegen_dir.join("gradle.properties");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let properties: BTreeMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim(), value.trim()))
            .collect();
        let get = |key: &str| {
            properties
                .get(key)
                .map(|value| value.to_string())
                .with_context(|| format!("{} does not set {key}", path.display()))
        };
        Ok(Self {
            smithy_rs_codegen_version: get("smithyRsCodegenVersion")?,
            smithy_version: get("smithyVersion")?,
            module_version: get("moduleVersion")?,
        })
    }
}

/// One run of a task of the Gradle build in `codegen/`.
#[derive(Debug)]
pub struct GradleRun<'a> {
    /// The Gradle executable.
    pub gradle: &'a Path,
    /// `codegen/`.
    pub codegen_dir: &'a Path,
    /// The task: `generateSdk` or `buildGenerator`.
    pub task: &'a str,
    /// `-Pname=value` properties.
    pub properties: Vec<(&'static str, String)>,
    /// Repositories to resolve the generator from.
    pub repos: &'a Repositories,
    /// Pass output through while running.
    pub verbose: bool,
}

impl GradleRun<'_> {
    /// Runs the task; on failure the error says what went wrong and shows Gradle's output.
    /// Returns what Gradle printed (empty with `verbose`, where it went to the terminal).
    pub fn run(&self) -> anyhow::Result<String> {
        let log_dir = self.codegen_dir.join("build");
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        let log_path = log_dir.join(format!("xtask-gradle-{}.log", self.task));
        let mut command = Command::new(self.gradle);
        command.current_dir(self.codegen_dir).arg("--console=plain");
        for (name, value) in &self.properties {
            command.arg(format!("-P{name}={value}"));
        }
        command.arg(self.task);
        if !self.repos.is_default() {
            command.arg(format!("-PmavenRepos={}", self.repos.urls().join(",")));
        }
        let output = if self.verbose {
            let status = command
                .stdin(Stdio::null())
                .status()
                .with_context(|| format!("cannot start {}", self.gradle.display()))?;
            (status, String::new())
        } else {
            let out = command
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("cannot start {}", self.gradle.display()))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status, text)
        };
        let (status, text) = output;
        std::fs::write(&log_path, &text)
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        if status.success() {
            return Ok(text);
        }
        Err(classify_failure(&text, self.repos, &log_path))
    }
}

/// Turns Gradle's output into the most specific error we can give.
pub fn classify_failure(output: &str, repos: &Repositories, log_path: &Path) -> anyhow::Error {
    let tail = tail(output, 60);
    let unresolved: Vec<&str> = output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            line.strip_prefix("> Could not find ")
                .or_else(|| line.strip_prefix("> Could not resolve "))
                .map(|rest| rest.trim_end_matches('.'))
        })
        .filter(|coordinates| coordinates.matches(':').count() >= 2)
        .collect();
    let network = [
        "Connection refused",
        "UnknownHostException",
        "Could not GET",
        "Read timed out",
        "connect timed out",
        "No route to host",
    ];
    if !unresolved.is_empty() {
        let mut unique = unresolved.clone();
        unique.sort_unstable();
        unique.dedup();
        let reason = if network.iter().any(|marker| output.contains(marker)) {
            "the Maven repository could not be reached"
        } else {
            "they are not published there"
        };
        return anyhow::Error::new(GeneratorUnavailable {
            message: format!(
                "the generator's artifacts could not be resolved from {} ({reason}): {}. \
                 Build the generator from its source instead with --generator-source PATH (a \
                 smithy-rs checkout or release source archive of the pinned release), pass \
                 --maven-repo with a repository that has them, or change the pins in \
                 codegen/gradle.properties. Gradle log: {}",
                repos.urls().join(", "),
                unique.join(", "),
                log_path.display()
            ),
        });
    }
    if output.contains("Unable to find a plugin for `rust-client-codegen`")
        || output.contains("Unable to find a plugin for 'rust-client-codegen'")
        || output.contains("Unable to find a plugin named `rust-client-codegen`")
    {
        return anyhow::anyhow!(
            "the smithy-rs generator is not on the classpath (no `rust-client-codegen` Smithy \
             build plugin was found); check the codegen artifacts in codegen/build.gradle.\n{tail}"
        );
    }
    let compile_errors: Vec<&str> = output
        .lines()
        .filter(|line| line.contains(".kt:") && line.contains(": error: "))
        .collect();
    if !compile_errors.is_empty() {
        return anyhow::anyhow!(
            "the generator source does not compile ({} Kotlin error(s)):\n{}\nFull Gradle log: {}",
            compile_errors.len(),
            compile_errors
                .iter()
                .take(20)
                .map(|line| format!("  {}", line.trim()))
                .collect::<Vec<_>>()
                .join("\n"),
            log_path.display()
        );
    }
    let events = validation_events(output);
    if !events.is_empty() || output.contains("Smithy build projection(s) failed") {
        let details = if events.is_empty() {
            tail
        } else {
            events.join("\n")
        };
        return anyhow::anyhow!(
            "the generator rejected the model ({} error event(s)):\n{details}\nFull Gradle log: {}",
            events.len(),
            log_path.display()
        );
    }
    anyhow::anyhow!(
        "gradle failed; last lines of its output:\n{tail}\nFull log: {}",
        log_path.display()
    )
}

/// Smithy's ERROR/DANGER validation events in `output`, one line each:
/// `EventId: message (shape id)`.
///
/// Smithy prints an event as a header (`──  projection  ERROR  ──── EventId`), `Shape:` and
/// `File:` lines, a source snippet whose lines contain `|`, a blank line and the message.
pub fn validation_events(output: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut lines = output.lines().peekable();
    while let Some(line) = lines.next() {
        let is_header =
            line.starts_with("──") && (line.contains("  ERROR  ") || line.contains("  DANGER  "));
        if !is_header {
            continue;
        }
        let id = line.split_whitespace().last().unwrap_or("?").to_string();
        let mut shape = None;
        let mut message = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("──") || (!message.is_empty() && next.trim().is_empty()) {
                break;
            }
            let next = lines.next().expect("peeked");
            if let Some(value) = next.strip_prefix("Shape:") {
                shape = Some(value.trim().to_string());
            } else if !(next.contains('|') || next.starts_with("File:") || next.trim().is_empty()) {
                message.push(next.trim());
            }
        }
        let shape = shape.map(|s| format!(" (shape {s})")).unwrap_or_default();
        events.push(format!("  {id}: {}{shape}", message.join(" ")));
    }
    events
}

/// Fails unless the generator left a crate (a `Cargo.toml`) in `output_dir`.
pub fn ensure_output_exists(output_dir: &Path) -> anyhow::Result<()> {
    if !output_dir.join("Cargo.toml").is_file() {
        bail!(
            "Gradle succeeded but the generator wrote no crate to {}; was the rust-client-codegen \
             plugin configured in codegen/smithy-build.json?",
            output_dir.display()
        );
    }
    Ok(())
}

/// The last `lines` lines of `text`, without Java stack frames.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text
        .lines()
        .filter(|line| {
            !line.trim_start().starts_with("at ") && !line.trim_start().starts_with("... ")
        })
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repos() -> Repositories {
        Repositories::new(&[])
    }

    #[test]
    fn unresolved_artifacts_mean_generator_unavailable() {
        let output = "FAILURE: Build failed with an exception.\n\
            * What went wrong:\nCould not resolve all files for configuration ':smithyCodegen'.\n\
            > Could not find software.amazon.smithy.rust:codegen-core:0.1.25.\n";
        let err = classify_failure(output, &repos(), Path::new("log"));
        assert_eq!(crate::exit_code(&err), crate::EXIT_GENERATOR_UNAVAILABLE);
        let text = err.to_string();
        assert!(
            text.contains("software.amazon.smithy.rust:codegen-core:0.1.25"),
            "{text}"
        );
        assert!(text.contains("not published"), "{text}");
        assert!(text.contains("--generator-source PATH"), "{text}");
    }

    #[test]
    fn network_failures_are_named() {
        let output = "> Could not resolve software.amazon.smithy:smithy-cli:1.73.0.\n\
            > Could not GET 'https://repo1.maven.org/...'. Connection refused\n";
        let text = classify_failure(output, &repos(), Path::new("log")).to_string();
        assert!(text.contains("could not be reached"), "{text}");
    }

    #[test]
    fn validation_errors_mean_the_model_was_rejected() {
        let output = "Validated model, now starting projections...\n\
            ──  kinesisvideowebrtcstorage  ERROR  ─────────── Target.UnresolvedShape\n\
            Shape: a#JoinStorageSession\n\
            File:  build/codegen-inputs/model.json:760:67\n\
            \n\
            760|     \"a#JoinStorageSession\": {\n\
            \x20  |                              ^\n\
            \n\
            operation shape has an `input` relationship to an unresolved shape\n\
            `a#NoSuchShape`\n\
            \n\
            The following 1 Smithy build projection(s) failed: [kinesisvideowebrtcstorage]\n";
        let err = classify_failure(output, &repos(), Path::new("log"));
        assert_eq!(crate::exit_code(&err), crate::EXIT_FAILURE);
        let text = err.to_string();
        assert!(
            text.contains("rejected the model (1 error event(s))"),
            "{text}"
        );
        assert!(
            text.contains(
                "Target.UnresolvedShape: operation shape has an `input` relationship to an \
                 unresolved shape `a#NoSuchShape` (shape a#JoinStorageSession)"
            ),
            "{text}"
        );
    }

    #[test]
    fn kotlin_errors_are_listed() {
        let output = ":compile-codegen-core\n\
            /src/codegen-core/src/main/kotlin/A.kt:3:1: warning: unused\n\
            /src/codegen-core/src/main/kotlin/A.kt:7:5: error: expecting a top level declaration\n\
            FAILURE: Build failed with an exception.\n";
        let text = classify_failure(output, &repos(), Path::new("log")).to_string();
        assert!(
            text.contains("does not compile (1 Kotlin error(s))")
                && text.contains("A.kt:7:5: error: expecting a top level declaration")
                && !text.contains("warning"),
            "{text}"
        );
    }

    #[test]
    fn pins_are_read_from_gradle_properties() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gradle.properties"),
            "# c\nsmithyRsCodegenVersion=0.1.25\nsmithyVersion = 1.73.0\nmoduleVersion=1.2.3\n",
        )
        .unwrap();
        let pins = GeneratorPins::read(dir.path()).unwrap();
        assert_eq!(pins.smithy_rs_codegen_version, "0.1.25");
        assert_eq!(pins.smithy_version, "1.73.0");
        assert_eq!(pins.module_version, "1.2.3");
        std::fs::write(dir.path().join("gradle.properties"), "smithyVersion=1\n").unwrap();
        let err = GeneratorPins::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not set smithyRsCodegenVersion"), "{err}");
    }
}
