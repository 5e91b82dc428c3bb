//! Library half of `cargo xtask`, so that integration tests and the workspace tests can call the
//! same checks the command runs. The binary (`main.rs`) only parses flags.

pub mod api;
pub mod cli;
pub mod fetch;
pub mod format;
pub mod fuzz;
pub mod generator_build;
pub mod generator_source;
pub mod gradle;
pub mod lock;
pub mod maven;
pub mod model;
pub mod model_transform;
pub mod package;
pub mod project;
pub mod publish;
pub mod regen;
pub mod soak;
pub mod stamp;
pub mod test_env;
pub mod toolchain;
pub mod tree;

/// The generator (or the model artifact) could not be obtained: its Maven artifacts did not
/// resolve or the repository could not be reached. `cargo xtask` exits with
/// [`EXIT_GENERATOR_UNAVAILABLE`] for it, so that CI can tell "could not run the generator here"
/// apart from "the generated code is wrong".
#[derive(Debug)]
pub struct GeneratorUnavailable {
    /// What could not be obtained, and what to do about it.
    pub message: String,
}

impl std::fmt::Display for GeneratorUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GeneratorUnavailable {}

/// A regeneration that succeeded but changed the crate in a way the workspace does not accept
/// as it is: hand-written crates no longer compile against it, or its API broke without the
/// version bump that needs. The new crate stays in `generated/` for the maintainer to fix or
/// undo; `cargo xtask` exits with [`EXIT_MODEL_CHANGE_NOT_ACCEPTED`] (`--allow-breaking`
/// accepts it).
#[derive(Debug)]
pub struct ModelChangeNotAccepted {
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for ModelChangeNotAccepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ModelChangeNotAccepted {}

/// Exit code for every failure that has no code of its own.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code when the generator's or the model's artifacts cannot be obtained: not published, or
/// the repository or URL unreachable (see [`GeneratorUnavailable`]).
pub const EXIT_GENERATOR_UNAVAILABLE: u8 = 3;
/// Exit code when a model change breaks the workspace or the API without the version it needs
/// (see [`ModelChangeNotAccepted`]).
pub const EXIT_MODEL_CHANGE_NOT_ACCEPTED: u8 = 4;

/// Maps an error to the process exit code.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    // `downcast_ref` also finds it where it was attached as context, which `chain()` does not.
    if err.downcast_ref::<GeneratorUnavailable>().is_some()
        || err.chain().any(|cause| cause.is::<GeneratorUnavailable>())
    {
        EXIT_GENERATOR_UNAVAILABLE
    } else if err.downcast_ref::<ModelChangeNotAccepted>().is_some() {
        EXIT_MODEL_CHANGE_NOT_ACCEPTED
    } else {
        EXIT_FAILURE
    }
}

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Regen(args) => regen::run(&project::Project::locate()?, &args),
        cli::Command::Test(args) => test_env::run(&project::Project::locate()?, &args),
        cli::Command::Fuzz(args) => fuzz::run(&project::Project::locate()?, &args),
        cli::Command::Publish(args) => publish::run(&project::Project::locate()?, &args),
        cli::Command::Soak(args) => soak::run(&project::Project::locate()?, &args),
    }
}
