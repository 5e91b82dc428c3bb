//! Finding Java and Gradle before anything expensive runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// The Java runtime Gradle will use.
#[derive(Debug, Clone)]
pub struct Java {
    /// The `java` executable.
    pub executable: PathBuf,
    /// First line of `java -version`.
    pub version: String,
}

/// Finds `java` the way Gradle does: `$JAVA_HOME/bin/java`, else `java` on `PATH`.
pub fn find_java() -> anyhow::Result<Java> {
    let executable = match std::env::var_os("JAVA_HOME").filter(|home| !home.is_empty()) {
        Some(home) => {
            let java = Path::new(&home).join("bin/java");
            if !is_executable(&java) {
                bail!(
                    "JAVA_HOME is {} but {} does not exist; point JAVA_HOME at a JDK (11 or newer) or unset it",
                    Path::new(&home).display(),
                    java.display()
                );
            }
            java
        }
        None => which("java").context(
            "Java not found: the smithy-rs generator runs on the JVM. Install a JDK 11 or newer \
             (Debian: `apt-get install -y openjdk-17-jdk-headless`) or set JAVA_HOME",
        )?,
    };
    let output = Command::new(&executable)
        .arg("-version")
        .output()
        .with_context(|| format!("cannot run {}", executable.display()))?;
    if !output.status.success() {
        bail!(
            "`{} -version` failed; check the Java installation",
            executable.display()
        );
    }
    let version = String::from_utf8_lossy(&output.stderr)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok(Java {
        executable,
        version,
    })
}

/// Finds Gradle: `$GRADLE` if set, else `codegen/gradlew`, else `gradle` on `PATH`.
pub fn find_gradle(codegen_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(gradle) = std::env::var_os("GRADLE").filter(|value| !value.is_empty()) {
        let gradle = PathBuf::from(gradle);
        let resolved = if gradle.components().count() == 1 {
            which(&gradle.to_string_lossy())
        } else {
            is_executable(&gradle).then(|| gradle.clone())
        };
        return resolved.with_context(|| {
            format!(
                "GRADLE is set to {} but that is not an executable; fix or unset GRADLE",
                gradle.display()
            )
        });
    }
    let wrapper = codegen_dir.join("gradlew");
    if is_executable(&wrapper) {
        return Ok(wrapper);
    }
    which("gradle").context(
        "Gradle not found: install it (Debian: `apt-get install -y gradle`, which gives Gradle \
         4.4.1; any Gradle from 4.4 to 9 works) or set GRADLE=/path/to/gradle",
    )
}

/// Looks `name` up on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
