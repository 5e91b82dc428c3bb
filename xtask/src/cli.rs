//! Command-line flags of `cargo xtask`.

use std::path::PathBuf;

/// Build automation for the kvs-webrtc workspace.
#[derive(Debug, clap::Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `cargo xtask`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Pull the Smithy model, run the smithy-rs generator and replace generated/.
    Regen(RegenArgs),
    /// Install what the tests need (apt packages as root, a Python virtualenv with boto3 and the
    /// AWS CLI, the npm tree, the smithy-rs source, a local registry server), then run
    /// `cargo test --workspace`.
    Test(crate::test_env::TestArgs),
    /// Build the libFuzzer targets of fuzz/ on the stable toolchain and run them (all of them
    /// in turn, or one), each for --seconds or --runs; --replay runs their corpora once.
    Fuzz(crate::fuzz::FuzzArgs),
    /// Publish every publishable crate in dependency order, from a clean tree whose generated/
    /// is what regen made.
    Publish(crate::publish::PublishArgs),
    /// Run many ingestion sessions against the emulator for a long time with faults injected,
    /// memory and descriptors sampled (`--minutes 30 --sessions 20` by default).
    Soak(crate::soak::SoakArgs),
}

/// Flags of `cargo xtask regen`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegenArgs {
    /// Regenerate from the locked model and pinned generator into a scratch directory and fail,
    /// with a diff, if generated/ differs. Changes nothing.
    #[arg(long, conflicts_with_all = ["model_version", "model_url", "model_file", "crate_name", "crate_version"])]
    pub check: bool,

    /// Pull this version of the Maven artifact
    /// software.amazon.api.models:kinesis-video-webrtc-storage (default: the newest).
    #[arg(long, value_name = "VERSION", conflicts_with_all = ["model_url", "model_file"])]
    pub model_version: Option<String>,

    /// Pull the model from a URL instead of Maven: a Smithy JSON AST (e.g. the raw file in the
    /// aws/api-models-aws repository) or a model jar.
    #[arg(long, value_name = "URL", conflicts_with = "model_file")]
    pub model_url: Option<String>,

    /// Use a local Smithy JSON AST (or model jar) instead of pulling one.
    #[arg(long, value_name = "PATH")]
    pub model_file: Option<PathBuf>,

    /// Maven repository to use instead of Maven Central, for the model and the generator; repeat
    /// for several (tried in order). Accepts https://, http://, file:// URLs and directories.
    #[arg(long = "maven-repo", value_name = "URL")]
    pub maven_repos: Vec<String>,

    /// Build the smithy-rs generator from this source instead of resolving its published Maven
    /// artifacts: a smithy-rs checkout or its release source archive (.tar.gz) of the release
    /// pinned in codegen/gradle.properties. The built jars are cached per user, keyed by the
    /// source's content, so later runs do not recompile.
    #[arg(long, value_name = "PATH")]
    pub generator_source: Option<PathBuf>,

    /// The smithy-rs commit the --generator-source tree is (it becomes the generated crate's
    /// codegen-version). Default: read from the archive's pax header or from `git rev-parse HEAD`.
    #[arg(long, value_name = "SHA", requires = "generator_source")]
    pub generator_commit: Option<String>,

    /// Package name of the generated crate (also its directory under generated/); recorded in
    /// model/model.lock.json and kept by later runs. Default: AWS's,
    /// aws-sdk-kinesisvideowebrtcstorage, which only AWS may publish on crates.io.
    #[arg(long, value_name = "NAME")]
    pub crate_name: Option<String>,

    /// Version of the generated crate; recorded in model/model.lock.json and kept by later runs.
    /// Default: moduleVersion in codegen/gradle.properties (AWS's for the pinned generator).
    #[arg(long, value_name = "VERSION")]
    pub crate_version: Option<String>,

    /// Accept a model change that breaks hand-written crates, or the crate's API without the
    /// version bump it needs (exit 0 instead of 4).
    #[arg(long)]
    pub allow_breaking: bool,

    /// Pass Gradle's output through while it runs (it is always shown when Gradle fails).
    #[arg(long, short)]
    pub verbose: bool,
}
