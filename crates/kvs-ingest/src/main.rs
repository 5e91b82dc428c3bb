//! `kvs-ingest`: stream H.264 + Opus into a Kinesis video stream over WebRTC.
//!
//! ```sh
//! kvs-ingest demo                                   # the embedded emulator, the sample clip
//! kvs-ingest run --channel cam --video cam.h264 --audio mic.opus --loop
//! ffmpeg ... -f h264 - | kvs-ingest run --channel cam --video - --audio mic.opus
//! kvs-ingest join --channel-arn arn:aws:kinesisvideo:...
//! ```
//!
//! Exit codes: 0 done, 2 bad input (arguments, media), 3 credentials refused, 4 channel not
//! usable (unknown, storage disabled), 5 gave up (the session could not be joined or kept; for
//! `join`, the call failed for another reason: throttled, network, service),
//! 6 no TURN relay (`--ice-transport-policy relay` and no TURN server gave an allocation),
//! 1 anything else.

mod aws;
mod demo;
mod join;
mod output;
mod report;
mod run;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Stream H.264 + Opus into Amazon Kinesis Video Streams through WebRTC ingestion.
#[derive(Debug, Parser)]
#[command(name = "kvs-ingest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the embedded emulator, ingest the bundled sample clip, and print a summary.
    Demo(demo::DemoArgs),
    /// Ingest files or pipes into a channel (AWS, or any emulator with --endpoint-url).
    Run(run::RunArgs),
    /// Call JoinStorageSession once (as `aws kinesis-video-webrtc-storage join-storage-session`).
    Join(join::JoinArgs),
    /// Call JoinStorageSessionAsViewer once.
    JoinAsViewer(join::JoinAsViewerArgs),
}

/// An exit code that says what kind of failure it was.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Exit {
    Failure = 1,
    BadInput = 2,
    AccessDenied = 3,
    ChannelNotUsable = 4,
    GaveUp = 5,
    NoRelay = 6,
}

impl Exit {
    pub(crate) fn of_ingest(kind: kvs_webrtc_ingest::ErrorKind) -> Self {
        use kvs_webrtc_ingest::ErrorKind as K;
        match kind {
            K::InvalidInput | K::Config => Self::BadInput,
            K::AccessDenied => Self::AccessDenied,
            K::ChannelNotUsable => Self::ChannelNotUsable,
            K::GaveUp => Self::GaveUp,
            K::Relay => Self::NoRelay,
            _ => Self::Failure,
        }
    }
}

/// A failure to report: the message (with its causes) and the exit code.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) exit: Exit,
    pub(crate) message: String,
}

impl Failed {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    /// `message`, then `cause` and its own causes.
    pub(crate) fn with_cause(
        exit: Exit,
        message: impl Into<String>,
        cause: &(dyn std::error::Error + 'static),
    ) -> Self {
        let mut message = message.into();
        message.push_str(&format!("\n  caused by: {}", chain(cause)));
        Self::new(exit, message)
    }

    /// A failure of the ingestion library (or of discovery, through the same kinds).
    pub(crate) fn ingest(e: kvs_webrtc_ingest::Error) -> Self {
        Self::new(Exit::of_ingest(e.kind()), chain(&e))
    }
}

/// An error and its causes, one per line, each once.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    format!("{:#}", kvs_webrtc_ingest::ErrorChain(e))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kvs-ingest: cannot start the runtime: {e}");
            return ExitCode::from(Exit::Failure as u8);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Join(args) => join::join(args).await,
            Command::JoinAsViewer(args) => join::join_as_viewer(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failed) => {
            eprintln!("kvs-ingest: {}", failed.message);
            ExitCode::from(failed.exit as u8)
        }
    }
}
