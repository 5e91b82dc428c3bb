//! `kvs-ingest run`: files or pipes into a channel.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use kvs_webrtc_ingest::{AudioSource, ContainerSource, VideoSource};

use crate::aws::{init_logging, AwsArgs};
use crate::output::Stream;
use crate::report::{stats_json, Reporter};
use crate::{Exit, Failed};

/// What to ingest, where.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The channel's name or ARN.
    #[arg(long)]
    channel: String,
    /// H.264 Annex-B video: a file, or `-` for stdin (live capture).
    #[arg(long)]
    video: Option<PathBuf>,
    /// Ogg Opus audio: a file, or `-` for stdin.
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Both tracks from one Matroska/WebM file (as `ffmpeg -f matroska` writes it), or `-` for
    /// stdin; instead of --video and --audio.
    #[arg(long, conflicts_with_all = ["video", "audio"])]
    input: Option<PathBuf>,
    /// The video's frame rate (raw H.264 has no timestamps).
    #[arg(long, default_value_t = kvs_webrtc_ingest::DEFAULT_FPS)]
    fps: u32,
    /// Start files over at their end.
    #[arg(long = "loop")]
    looping: bool,
    /// `master` (sends video and audio) or `viewer` (audio only, needs --client-id).
    #[arg(long, default_value = "master", value_parser = ["master", "viewer"])]
    role: String,
    /// The viewer's client id.
    #[arg(long)]
    client_id: Option<String>,
    /// Stop after this many seconds (default: when the sources end).
    #[arg(long)]
    duration: Option<f64>,
    /// One JSON object per event on stdout, and the final statistics.
    #[arg(long)]
    json: bool,
    /// `all`: offer every candidate, the most direct path wins; `relay`: only TURN relays of
    /// GetIceServerConfig (how to check that TURN works from this network; exit code 6 when
    /// no TURN server gives an allocation).
    #[arg(long, default_value = "all")]
    ice_transport_policy: kvs_webrtc_ingest::IceTransportPolicy,
    #[command(flatten)]
    aws: AwsArgs,
}

pub(crate) async fn run(args: RunArgs) -> Result<(), Failed> {
    let mut logs = init_logging(args.aws.debug, true);
    if args.video.as_deref().is_some_and(is_stdin) && args.audio.as_deref().is_some_and(is_stdin) {
        return Err(Failed::new(
            Exit::BadInput,
            "only one of --video and --audio can read stdin",
        ));
    }
    let duration = parse_duration(args.duration)?;
    let config = args
        .aws
        .ingest_config(&args.channel)
        .await?
        .ice_transport_policy(args.ice_transport_policy);
    let client = kvs_webrtc_ingest::Client::from_conf(args.aws.build(config)?);
    let mut builder = client.ingest().channel(&args.channel);
    if args.role == "viewer" {
        let id = args
            .client_id
            .clone()
            .ok_or_else(|| Failed::new(Exit::BadInput, "--role viewer needs --client-id"))?;
        builder = builder.viewer(id);
    }
    if let Some(path) = &args.video {
        let source = if is_stdin(path) {
            VideoSource::annex_b_reader(std::io::stdin(), "the video on stdin")
        } else {
            VideoSource::annex_b_file(path)
        };
        builder = builder.video(source.fps(args.fps).looping(args.looping));
    }
    if let Some(path) = &args.audio {
        let source = if is_stdin(path) {
            AudioSource::ogg_opus_reader(std::io::stdin(), "the audio on stdin")
        } else {
            AudioSource::ogg_opus_file(path)
        };
        builder = builder.audio(source.looping(args.looping));
    }
    if let Some(path) = &args.input {
        let source = if is_stdin(path) {
            ContainerSource::matroska_reader(std::io::stdin(), "the media on stdin")
        } else {
            ContainerSource::matroska_file(path)
        };
        builder = builder.media(source.looping(args.looping));
    }
    let mut session = builder.send().await.map_err(Failed::ingest)?;
    let mut reporter = Reporter::new(args.json);
    let deadline = duration.map(|d| Instant::now() + d);
    let outcome = reporter.follow(&mut session, deadline).await;
    let result = match outcome {
        Ok(()) => session.wait().await,
        Err(()) => session.stop().await,
    };
    // The logs first (they are flushed), then the summary: it is the last line.
    let log_lines_dropped = logs.finish();
    let events_dropped = reporter.events_dropped();
    let stats = match result {
        Ok(stats) => stats,
        Err(e) => {
            reporter.finish(Vec::new());
            return Err(Failed::ingest(e));
        }
    };
    let summary = if args.json {
        let summary = serde_json::json!({
            "event": "summary",
            "stats": stats_json(&stats),
            "eventsDropped": events_dropped,
            "logLinesDropped": log_lines_dropped,
        });
        (Stream::Stdout, summary.to_string())
    } else {
        let mut line = format!(
            "sent {} video frames ({} bytes) and {} audio packets ({} bytes); {} join(s)",
            stats.video.frames_sent,
            stats.video.bytes_sent,
            stats.audio.frames_sent,
            stats.audio.bytes_sent,
            stats.joins
        );
        if events_dropped + log_lines_dropped > 0 {
            line.push_str(&format!(
                "; {events_dropped} events and {log_lines_dropped} log lines dropped (the output was not read fast enough)"
            ));
        }
        (Stream::Stderr, line)
    };
    reporter.finish(vec![summary]);
    Ok(())
}

fn is_stdin(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

pub(crate) fn parse_duration(seconds: Option<f64>) -> Result<Option<Duration>, Failed> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(Failed::new(
            Exit::BadInput,
            format!("--duration {s} is not a positive number of seconds"),
        )),
    }
}
