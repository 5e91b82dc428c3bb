//! `cargo xtask test`: provision what the test suites need, then run every test.
//!
//! The suites use real outside peers and tools: ffprobe (recordings), coturn (TURN), the official AWS clients
//! from PyPI (boto3, AWS CLI), the KVS WebRTC JS SDK from npm, Java + Gradle (the generator),
//! the pinned smithy-rs source archive (the generator built from source), and GStreamer (the
//! `-dev` packages the GStreamer plugin builds against, and the elements its tests run). This command makes
//! each of them present, idempotently and quickly when they already are, then runs
//! `cargo test --workspace`. What cannot be provisioned here stops it with an error that names
//! the missing piece and how to get it; no test is skipped silently.
//!
//! * Debian packages: installed with apt-get when running as root, else listed for the user.
//! * Python clients: a virtualenv under `target/test-env/python` (PEP 668 keeps pip out of the
//!   system Python), put first on the tests' `PATH`.
//! * npm: `npm ci` in `crates/kvs-emulator/tests/js` (the KVS WebRTC JS SDK) and
//!   `crates/kvs-emulator/player` (hls.js and dash.js for the player tests), each redone only
//!   when its lock file changes.
//! * smithy-rs source: `$KVS_SMITHY_RS_SOURCE`, else `../shared/vendor/...` beside the workspace,
//!   else downloaded from GitHub into `target/test-env`.
//! * A local Cargo registry server for the publishing test: `cargo-http-registry` (crates.io),
//!   `cargo install`ed into `target/test-env/cargo-http-registry` at a pinned version; the tests
//!   find it through `$KVS_CARGO_HTTP_REGISTRY`.
//! * The AWS KVS WebRTC C SDK's master sample, built once from `../shared/vendor/kvs-webrtc-sdk-c`
//!   into `target/c-sdk` ([`c_sdk`]); its path reaches the tests as `KVS_C_SDK_MASTER`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::lock::sha256_hex;
use crate::project::Project;
use crate::toolchain::which;

pub mod c_sdk;

/// Python packages the tests run (the official AWS clients).
const PYTHON_PACKAGES: &[&str] = &["boto3", "awscli"];

/// The registry server the publishing test starts (crates.io package and version).
pub const REGISTRY_SERVER: (&str, &str) = ("cargo-http-registry", "0.1.8");

/// The smithy-rs release whose source the generator tests build.
const SMITHY_RS_TAG: &str = "release-2026-08-21";

/// One thing the tests need from the system, and the Debian package that provides it.
struct SystemTool {
    present: Presence,
    package: &'static str,
    why: &'static str,
}

/// How a [`SystemTool`] is found.
#[derive(Debug, Clone, Copy)]
enum Presence {
    /// A command on `PATH`.
    Command(&'static str),
    /// A pkg-config module (a library's `-dev` package), `pkg-config --exists`.
    PkgConfig(&'static str),
    /// A GStreamer element, `gst-inspect-1.0 --exists`.
    GstElement(&'static str),
}

impl Presence {
    fn is_present(self) -> bool {
        let succeeds = |command: &mut Command| command.output().is_ok_and(|o| o.status.success());
        match self {
            Self::Command(command) => which(command).is_some(),
            Self::PkgConfig(module) => {
                succeeds(Command::new("pkg-config").args(["--exists", module]))
            }
            Self::GstElement(element) => {
                succeeds(Command::new("gst-inspect-1.0").args(["--exists", element]))
            }
        }
    }
}

impl std::fmt::Display for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Command(command) => f.write_str(command),
            Self::PkgConfig(module) => write!(f, "the pkg-config module {module}"),
            Self::GstElement(element) => write!(f, "the GStreamer element {element}"),
        }
    }
}

const SYSTEM_TOOLS: &[SystemTool] = &[
    SystemTool {
        present: Presence::Command("java"),
        package: "openjdk-17-jdk-headless",
        why: "runs the smithy-rs generator",
    },
    SystemTool {
        present: Presence::Command("gradle"),
        package: "gradle",
        why: "drives the generator build in codegen/",
    },
    SystemTool {
        present: Presence::Command("cmake"),
        package: "cmake",
        why: "builds the bundled libopus of the emulator's Opus to AAC transcoder",
    },
    SystemTool {
        present: Presence::Command("ffprobe"),
        package: "ffmpeg",
        why: "checks the emulator's recordings",
    },
    SystemTool {
        present: Presence::Command("node"),
        package: "nodejs",
        why: "runs the KVS WebRTC JS SDK",
    },
    SystemTool {
        present: Presence::Command("npm"),
        package: "npm",
        why: "installs the KVS WebRTC JS SDK",
    },
    SystemTool {
        present: Presence::Command("python3"),
        package: "python3",
        why: "runs boto3 and the AWS CLI",
    },
    SystemTool {
        present: Presence::Command("chromium"),
        package: "chromium",
        why: "plays the storage peer with an independent WebRTC stack",
    },
    SystemTool {
        present: Presence::Command("certutil"),
        package: "libnss3-tools",
        why: "makes the test browser trust the emulator's CA",
    },
    SystemTool {
        present: Presence::Command("turnserver"),
        package: "coturn",
        why: "is the real TURN server the relay tests go through (UDP, TCP, TLS)",
    },
    // The GStreamer plugin (crates/gst-plugin-kvs-webrtc-storage): Debian bookworm's 1.22.
    SystemTool {
        present: Presence::Command("pkg-config"),
        package: "pkg-config",
        why: "finds GStreamer's libraries for the GStreamer plugin's build",
    },
    SystemTool {
        present: Presence::PkgConfig("gstreamer-check-1.0"),
        package: "libgstreamer1.0-dev",
        why: "GStreamer's core, base and check libraries the plugin and its tests build against",
    },
    SystemTool {
        present: Presence::PkgConfig("gstreamer-video-1.0"),
        package: "libgstreamer-plugins-base1.0-dev",
        why: "GStreamer's video library (the plugin's force-key-unit events)",
    },
    SystemTool {
        present: Presence::Command("gst-launch-1.0"),
        package: "gstreamer1.0-tools",
        why: "runs the plugin's test pipelines (gst-launch-1.0, gst-inspect-1.0)",
    },
    SystemTool {
        present: Presence::GstElement("opusenc"),
        package: "gstreamer1.0-plugins-base",
        why: "videotestsrc, audiotestsrc and opusenc for the plugin's test pipelines",
    },
    SystemTool {
        present: Presence::GstElement("h264parse"),
        package: "gstreamer1.0-plugins-bad",
        why: "h264parse for the plugin's test pipelines",
    },
    SystemTool {
        present: Presence::GstElement("x264enc"),
        package: "gstreamer1.0-plugins-ugly",
        why: "x264enc, the H.264 encoder of the plugin's test pipelines",
    },
];

/// Flags of `cargo xtask test`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TestArgs {
    /// Provision only; do not run the tests.
    #[arg(long)]
    pub provision_only: bool,

    /// Arguments passed on to `cargo test` (after `--`); `-p NAME` narrows the run to those
    /// packages, otherwise the whole workspace is tested.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// What the tests need in their environment once provisioned.
#[derive(Debug)]
pub struct TestEnv {
    /// Directories to put first on `PATH` (the Python virtualenv's `bin`).
    pub path_prefix: Vec<PathBuf>,
    /// The smithy-rs source archive for the generator tests.
    pub smithy_rs_source: PathBuf,
    /// The `cargo-http-registry` executable for the publishing test.
    pub registry_server: PathBuf,
    /// The C SDK's master sample for the emulator's interop test.
    pub c_sdk_master: PathBuf,
}

/// Runs `cargo xtask test`.
pub fn run(project: &Project, args: &TestArgs) -> anyhow::Result<()> {
    let env = provision(project)?;
    if args.provision_only {
        println!("test-env: ready");
        return Ok(());
    }
    let path = std::env::join_paths(env.path_prefix.iter().cloned().chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .context("a PATH entry contains a ':'")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // `-p NAME` narrows the run; without it, every package of the workspace is tested.
    let selects_packages = args
        .cargo_args
        .iter()
        .any(|arg| arg.starts_with("-p") || arg.starts_with("--package"));
    let scope: &[&str] = if selects_packages {
        &[]
    } else {
        &["--workspace"]
    };
    let shown: Vec<&str> = scope
        .iter()
        .copied()
        .chain(args.cargo_args.iter().map(String::as_str))
        .collect();
    let skip = generated_doctest_to_skip(project)?;
    let mut cargo_args = args.cargo_args.clone();
    if let Some(name) = &skip {
        println!(
            "test-env: skipping the doctest {name:?}: the generator's crate-level example \
             (`use <crate> as <name>;`) names the crate twice for any name but AWS's, which \
             rustdoc's injected `extern crate` rejects (E0254); as code in a user's crate it \
             compiles"
        );
        if !cargo_args.iter().any(|a| a == "--") {
            cargo_args.push("--".into());
        }
        cargo_args.extend(["--skip".into(), name.clone()]);
    }
    println!("test-env: cargo test {}", shown.join(" "));
    let status = Command::new(cargo)
        .current_dir(project.root())
        .arg("test")
        .args(scope)
        .args(&cargo_args)
        .env("PATH", path)
        .env("KVS_SMITHY_RS_SOURCE", &env.smithy_rs_source)
        .env("KVS_CARGO_HTTP_REGISTRY", &env.registry_server)
        .env("KVS_C_SDK_MASTER", &env.c_sdk_master)
        // Tests must not leave Gradle daemons behind.
        .env("GRADLE_OPTS", gradle_opts())
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// The one doctest of the generated crate that cannot compile under a name other than AWS's
/// (see `run`): `<crate dir>/src/lib.rs - (line 42)`, or `None` under AWS's name.
fn generated_doctest_to_skip(project: &Project) -> anyhow::Result<Option<String>> {
    let Some(krate) = crate::lock::ModelLock::read(&project.model_lock())?.and_then(|l| l.krate)
    else {
        return Ok(None);
    };
    if krate.is_aws_name() {
        return Ok(None);
    }
    let lib = project.generated_crate(&krate.name).join("src/lib.rs");
    let text =
        std::fs::read_to_string(&lib).with_context(|| format!("cannot read {}", lib.display()))?;
    // The fenced block that holds `use <lib> as <alias>;`: its opening line is the doctest's.
    let lines: Vec<&str> = text.lines().collect();
    let Some(use_line) = lines
        .iter()
        .position(|l| l.starts_with(&format!("//! use {} as ", krate.lib_name())))
    else {
        return Ok(None);
    };
    let Some(fence) = lines[..use_line]
        .iter()
        .rposition(|l| l.starts_with("//! ```"))
    else {
        return Ok(None);
    };
    Ok(Some(format!(
        "generated/{}/src/lib.rs - (line {})",
        krate.name,
        fence + 1
    )))
}

/// Makes everything the tests need present; see the module docs.
pub fn provision(project: &Project) -> anyhow::Result<TestEnv> {
    ensure_system_tools()?;
    let env_dir = project.root().join("target/test-env");
    std::fs::create_dir_all(&env_dir)
        .with_context(|| format!("cannot create {}", env_dir.display()))?;
    let python_bin = ensure_python_clients(&env_dir.join("python"))?;
    ensure_npm_tree(&project.root().join("crates/kvs-emulator/tests/js"))?;
    ensure_npm_tree(&project.root().join("crates/kvs-emulator/player"))?;
    let smithy_rs_source = ensure_smithy_rs_source(project, &env_dir)?;
    let registry_server = ensure_registry_server(&env_dir)?;
    let c_sdk_master = c_sdk::ensure(project)?;
    Ok(TestEnv {
        path_prefix: vec![python_bin],
        smithy_rs_source,
        registry_server,
        c_sdk_master,
    })
}

fn gradle_opts() -> String {
    let existing = std::env::var("GRADLE_OPTS").unwrap_or_default();
    format!("{existing} -Dorg.gradle.daemon=false")
        .trim()
        .to_string()
}

/// Installs missing Debian packages as root; otherwise names them.
fn ensure_system_tools() -> anyhow::Result<()> {
    let missing_tools: Vec<&SystemTool> = SYSTEM_TOOLS
        .iter()
        .filter(|tool| !tool.present.is_present())
        .collect();
    let mut packages: Vec<&str> = missing_tools.iter().map(|tool| tool.package).collect();
    // Debian's python3 cannot make a virtualenv without python3-venv (ensurepip).
    let python_ok = which("python3").is_some() && python_can_make_venvs();
    if !python_ok {
        packages.push("python3-venv");
    }
    packages.dedup();
    if packages.is_empty() {
        let names: Vec<String> = SYSTEM_TOOLS.iter().map(|t| t.present.to_string()).collect();
        println!("test-env: system tools present ({})", names.join(", "));
        return Ok(());
    }
    let missing = missing_tools
        .iter()
        .map(|tool| format!("{} ({}, {})", tool.present, tool.package, tool.why))
        .collect::<Vec<_>>();
    if !is_root() || which("apt-get").is_none() {
        bail!(
            "the tests need these tools: {}{}; install them with `sudo apt-get install -y {}` \
             (or run this command as root on Debian/Ubuntu, which installs them)",
            missing.join(", "),
            if python_ok {
                ""
            } else {
                ", python3-venv (virtualenvs for boto3 and the AWS CLI)"
            },
            packages.join(" ")
        );
    }
    apt_install(&packages)?;
    for tool in SYSTEM_TOOLS {
        if !tool.present.is_present() {
            bail!(
                "{} is still missing after installing {}; install it by hand",
                tool.present,
                tool.package
            );
        }
    }
    Ok(())
}

/// `apt-get update` and `apt-get install` of `packages` (as root).
pub(crate) fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    println!("test-env: apt-get install {}", packages.join(" "));
    run_quiet(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get update",
    )?;
    run_quiet(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get install",
    )
}

fn python_can_make_venvs() -> bool {
    Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .output()
        .is_ok_and(|out| out.status.success())
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A virtualenv with [`PYTHON_PACKAGES`]; returns its `bin` directory.
fn ensure_python_clients(venv: &Path) -> anyhow::Result<PathBuf> {
    let bin = venv.join("bin");
    let stamp = venv.join("kvs-packages.txt");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted)
        && bin.join("python3").exists()
        && bin.join("aws").exists()
    {
        println!("test-env: Python clients present ({})", venv.display());
        return Ok(bin);
    }
    println!(
        "test-env: installing {} into {}",
        PYTHON_PACKAGES.join(", "),
        venv.display()
    );
    run_quiet(
        Command::new("python3").args(["-m", "venv"]).arg(venv),
        "python3 -m venv",
    )?;
    run_quiet(
        Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PYTHON_PACKAGES),
        "pip install boto3 awscli (from PyPI)",
    )?;
    std::fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(bin)
}

/// `npm ci` in `dir`, unless `node_modules` was installed from the same lock file.
fn ensure_npm_tree(dir: &Path) -> anyhow::Result<()> {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("cannot read {}/package-lock.json", dir.display()))?;
    let stamp = dir.join("node_modules/.kvs-package-lock.sha256");
    let sha = sha256_hex(&lock);
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == sha) {
        println!("test-env: npm packages present ({})", dir.display());
        return Ok(());
    }
    println!("test-env: npm ci in {}", dir.display());
    // --legacy-peer-deps: isomorphic-webcrypto declares React Native (expo) peers that Node
    // never loads.
    run_quiet(
        Command::new("npm").current_dir(dir).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--legacy-peer-deps",
        ]),
        "npm ci (from the npm registry)",
    )?;
    std::fs::write(&stamp, sha).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(())
}

/// The smithy-rs source archive the generator tests build from.
fn ensure_smithy_rs_source(project: &Project, env_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("KVS_SMITHY_RS_SOURCE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.exists() {
            bail!(
                "KVS_SMITHY_RS_SOURCE is {} but it does not exist",
                path.display()
            );
        }
        return Ok(path);
    }
    let name = format!("smithy-rs-{SMITHY_RS_TAG}-codegen-src.tar.gz");
    let shared = project
        .root()
        .join("../shared/vendor/smithy-rs")
        .join(&name);
    if shared.is_file() {
        println!("test-env: smithy-rs source {}", shared.display());
        return Ok(shared);
    }
    let downloaded = env_dir.join(format!("smithy-rs-{SMITHY_RS_TAG}.tar.gz"));
    if downloaded.is_file() {
        return Ok(downloaded);
    }
    let url = format!(
        "https://github.com/smithy-lang/smithy-rs/archive/refs/tags/{SMITHY_RS_TAG}.tar.gz"
    );
    println!("test-env: downloading {url}");
    match crate::fetch::fetch(&url) {
        Ok(bytes) => {
            crate::tree::write_atomically(&downloaded, &bytes)?;
            Ok(downloaded)
        }
        Err(err) => bail!(
            "the generator tests need the smithy-rs {SMITHY_RS_TAG} source archive: none at {} \
             and {url} could not be downloaded ({err:#}); set KVS_SMITHY_RS_SOURCE to a copy",
            shared.display()
        ),
    }
}

/// `cargo install`s [`REGISTRY_SERVER`] under `env_dir` unless that version is there; returns
/// its executable.
fn ensure_registry_server(env_dir: &Path) -> anyhow::Result<PathBuf> {
    let (package, version) = REGISTRY_SERVER;
    let root = env_dir.join(package);
    let executable = root.join("bin").join(package);
    let stamp = root.join("kvs-version.txt");
    if executable.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|v| v == version) {
        println!(
            "test-env: {package} {version} present ({})",
            executable.display()
        );
        return Ok(executable);
    }
    println!(
        "test-env: cargo install {package} {version} into {} (from crates.io)",
        root.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_quiet(
        Command::new(cargo)
            .args([
                "install",
                "--quiet",
                "--force",
                package,
                "--version",
                version,
            ])
            .arg("--root")
            .arg(&root)
            // Its build stays out of the workspace's target directory.
            .env("CARGO_TARGET_DIR", env_dir.join("cargo-install-target")),
        &format!("cargo install {package} --version {version}"),
    )?;
    std::fs::write(&stamp, version).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(executable)
}

/// Runs `command`, showing its output only when it fails.
pub(crate) fn run_quiet(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
