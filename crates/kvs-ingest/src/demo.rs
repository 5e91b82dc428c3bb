//! `kvs-ingest demo`: the whole path on one machine. The embedded emulator plays AWS (control
//! plane, signaling, storage API and a WebRTC storage peer that records), a storage channel is
//! created, and the bundled sample clip (H.264 + Opus, made by this project) is ingested.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use kvs_emulator::{Emulator, TlsMode};
use kvs_webrtc_ingest::{AudioSource, VideoSource};

use crate::aws::init_logging;
use crate::report::{stats_json, Reporter};
use crate::{Exit, Failed};

const CHANNEL: &str = "demo-camera";

/// Options of the demo.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long to ingest (the 3 s clip loops).
    #[arg(long, default_value_t = 10.0, conflicts_with = "play")]
    duration: f64,
    /// Ingest until Ctrl-C and print where to watch the stream live: the emulator's player
    /// page (any browser: hls.js or dash.js, the stream's fragments, GetImages thumbnails) and
    /// an HLS URL for VLC, ffplay or Safari.
    #[arg(long)]
    play: bool,
    /// Where the emulator keeps its CA and the recordings (default: kvs-ingest-demo in the
    /// system's temporary directory). Recordings are never overwritten.
    #[arg(long)]
    out: Option<PathBuf>,
    /// One JSON object per event on stdout, then the summary.
    #[arg(long)]
    json: bool,
    /// Log the emulator and the client at debug level.
    #[arg(long)]
    debug: bool,
    /// `relay`: media only through the emulator's TURN server (relayed candidates), `all`:
    /// the most direct path.
    #[arg(long, default_value = "all")]
    ice_transport_policy: kvs_webrtc_ingest::IceTransportPolicy,
}

pub(crate) async fn run(args: DemoArgs) -> Result<(), Failed> {
    let _logs = init_logging(args.debug, true);
    let duration = crate::run::parse_duration(Some(args.duration))?.unwrap_or_default();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("kvs-ingest-demo"));
    let out = std::path::absolute(&out).unwrap_or(out);
    let started = Instant::now();
    // The fragments this run stores are those the server stamps from now on.
    let started_wall = SystemTime::now();
    let emulator = Emulator::builder()
        .recordings_dir(out.join("recordings"))
        .streams_dir(out.join("streams"))
        // Kept, so that `kvs-emulator serve --data-dir <out>` serves the stream afterwards.
        .registry_file(out.join("registry.json"))
        .tls(TlsMode::GeneratedCa {
            dir: out.join("ca"),
        })
        .start()
        .await
        .map_err(|e| Failed::with_cause(Exit::Failure, "the emulator did not start", &e))?;
    if !args.json {
        eprintln!(
            "emulator: {} (region {})",
            emulator.endpoint_url(),
            emulator.region()
        );
    }
    // A demo run before in the same directory left its channel in the registry: reused.
    let channel_arn = match emulator.create_or_reuse_storage_channel(CHANNEL) {
        Ok(arn) => arn,
        Err(e) => {
            return Err(Failed::new(
                Exit::Failure,
                format!("creating the channel failed: {e}"),
            ))
        }
    };
    let sdk_config = emulator
        .sdk_config()
        .map_err(|e| Failed::with_cause(Exit::Failure, "the emulator's SDK settings failed", &e))?;
    let mut config = kvs_webrtc_ingest::Config::builder()
        .sdk_config(sdk_config)
        .ice_transport_policy(args.ice_transport_policy);
    if let Some(ca) = emulator.ca_cert_pem() {
        config = config.trust_root_certificate_pem(ca);
    }
    let client = kvs_webrtc_ingest::Client::from_conf(config.build().map_err(Failed::ingest)?);

    let clip = out.join("sample");
    let files = kvs_media::sample::write_files(&clip).map_err(|e| {
        Failed::new(
            Exit::Failure,
            format!("cannot write the sample clip under {}: {e}", clip.display()),
        )
    })?;
    let mut session = client
        .ingest()
        .channel(CHANNEL)
        .video(
            VideoSource::annex_b_file(&files.video)
                .fps(kvs_media::sample::H264_FPS)
                .looping(true),
        )
        .audio(AudioSource::ogg_opus_file(&files.audio).looping(true))
        .send()
        .await
        .map_err(Failed::ingest)?;
    let mut reporter = Reporter::new(args.json);
    let _ = if args.play {
        let watch = crate::watch::where_to_watch(&emulator, CHANNEL, args.json);
        reporter.follow_announcing(&mut session, None, watch).await
    } else {
        reporter
            .follow(&mut session, Some(Instant::now() + duration))
            .await
    };
    let stats = session.stop().await.map_err(Failed::ingest)?;
    // What follows is printed after the media stopped: it may wait for the reader.
    reporter.finish(Vec::new());

    // What the storage peer received (the last packets may still be in flight: wait, bounded,
    // until it has counted what was sent), then the recording it finalized.
    let ours = |emulator: &kvs_emulator::EmulatorHandle| {
        emulator
            .sessions()
            .into_iter()
            .filter(|s| s.channel_arn == channel_arn)
            .collect::<Vec<_>>()
    };
    let settle = Instant::now() + Duration::from_secs(2);
    let received = loop {
        let sessions = ours(&emulator);
        let video: u64 = sessions.iter().map(|s| s.media.video.frames).sum();
        let audio: u64 = sessions.iter().map(|s| s.media.audio.frames).sum();
        if (video >= stats.video.frames_sent && audio >= stats.audio.frames_sent)
            || Instant::now() >= settle
        {
            break sessions;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stopped = emulator.shutdown().await;
    let recordings: Vec<PathBuf> = received
        .iter()
        .filter_map(|s| s.media.recording.clone())
        .collect();
    let first_frame_ms = received
        .iter()
        .find_map(|s| s.media.video.first_frame_unix_ms)
        .map(|at| {
            let started_unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
                .saturating_sub(started.elapsed().as_millis() as u64);
            at.saturating_sub(started_unix_ms)
        });
    // What the channel's Kinesis video stream kept (fragments of H.264 + AAC), and where.
    let stored = received.iter().find_map(|s| s.media.store.clone());
    let stored_dir = stored
        .as_ref()
        .map(|s| stopped.streams_dir().join(&s.stream).join("fragments"));
    // Counted on disk after the shutdown, which stored the last fragment of every session.
    let fragments = stored_dir.as_ref().map_or(0, |dir| {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "mkv"))
                .count()
        })
    });
    // The stream read back as GetClip returns it (fragmented MP4), next to the recordings.
    let clip = match &stored {
        Some(s) => match stopped.clip(&s.stream) {
            Ok(Some(bytes)) => {
                let path = out.join("clips").join(format!("{}.mp4", s.stream));
                let written = std::fs::create_dir_all(out.join("clips"))
                    .and_then(|()| std::fs::write(&path, bytes));
                match written {
                    Ok(()) => Some(path),
                    Err(e) => {
                        tracing::warn!(error = %e, path = %path.display(), "the clip could not be written");
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, stream = %s.stream, "the stream's clip could not be made");
                None
            }
        },
        None => None,
    };
    let video_frames: u64 = received.iter().map(|s| s.media.video.frames).sum();
    let video_bytes: u64 = received.iter().map(|s| s.media.video.bytes).sum();
    let audio_frames: u64 = received.iter().map(|s| s.media.audio.frames).sum();
    let audio_bytes: u64 = received.iter().map(|s| s.media.audio.bytes).sum();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "summary",
                "timeToFirstFrameMs": first_frame_ms,
                "received": {
                    "video": { "frames": video_frames, "bytes": video_bytes },
                    "audio": { "frames": audio_frames, "bytes": audio_bytes },
                },
                "recordings": recordings,
                "stored": stored.as_ref().map(|s| serde_json::json!({
                    "stream": s.stream,
                    "fragments": fragments,
                    "audioCodec": s.audio_codec,
                    "dir": stored_dir,
                    "clip": clip,
                })),
                "sent": stats_json(&stats),
            })
        );
    } else {
        if args.play {
            println!("kvs-ingest demo: the sample clip into channel {CHANNEL} until Ctrl-C");
        } else {
            println!(
                "kvs-ingest demo: {} s of the sample clip into channel {CHANNEL}",
                args.duration
            );
        }
        match first_frame_ms {
            Some(ms) => println!("  first frame received by the storage peer {ms} ms after start"),
            None => println!("  no frame reached the storage peer"),
        }
        println!(
            "  video received: {video_frames} frames, {video_bytes} bytes (sent {})",
            stats.video.frames_sent
        );
        println!(
            "  audio received: {audio_frames} frames, {audio_bytes} bytes (sent {})",
            stats.audio.frames_sent
        );
        for path in &recordings {
            println!("  recording: {}", path.display());
        }
        println!(
            "  (recordings are kept under {})",
            stopped.recordings_dir().display()
        );
        if let (Some(s), Some(dir)) = (&stored, &stored_dir) {
            println!(
                "  stream {}: {} fragments of H.264 + {} in {} (one Matroska file each)",
                s.stream,
                fragments,
                s.audio_codec.to_uppercase(),
                dir.display(),
            );
            if let Some(clip) = &clip {
                println!(
                    "  clip: {} (the stream read back as GetClip returns it: fragmented MP4)",
                    clip.display()
                );
            }
            match stopped.fragment_server_timestamps(&s.stream) {
                Ok(stamps) => print_read_back(
                    &out,
                    &s.stream,
                    ThisRun::new(&stamps, started_wall, SystemTime::now()),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, stream = %s.stream, "the stream's index could not be read");
                }
            }
        }
    }
    if video_frames == 0 || audio_frames == 0 {
        return Err(Failed::new(
            Exit::GaveUp,
            "no media reached the storage peer",
        ));
    }
    Ok(())
}

/// The whole UTC seconds that select this run's fragments by server timestamp, and only
/// those: the AWS CLI sends timestamps in whole seconds, and a demo run before in the same
/// directory stored fragments into the same stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ThisRun {
    /// StartTimestamp, epoch seconds.
    start: u64,
    /// EndTimestamp, epoch seconds.
    end: u64,
    /// A fragment of the run before began in the second this run's first one did: the range
    /// starts a second later and leaves that first fragment out.
    first_left_out: bool,
}

impl ThisRun {
    /// From the server timestamps of the stream's fragments (`stamps`), the instant this run
    /// started (it stamps nothing earlier) and `now`, after its last fragment.
    fn new(stamps: &[SystemTime], started: SystemTime, now: SystemTime) -> Self {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let first_of_run = stamps.iter().filter(|t| **t >= started).min();
        let last_before = stamps.iter().filter(|t| **t < started).max();
        let mut start = secs(*first_of_run.unwrap_or(&started)).as_secs();
        let first_left_out = last_before.is_some_and(|t| secs(*t).as_secs() >= start);
        if first_left_out {
            start += 1;
        }
        Self {
            start,
            end: secs(now).as_secs() + 1,
            first_left_out,
        }
    }
}

/// How to read the demo's stream back with the AWS CLI, from `kvs-emulator serve` on the
/// demo's directory (which keeps the channel, the stream and its fragments).
fn print_read_back(out: &std::path::Path, stream: &str, this_run: ThisRun) {
    use aws_sdk_kinesisvideowebrtcstorage::primitives::{DateTime, DateTimeFormat};
    let at = |secs: u64| {
        DateTime::from_secs(secs as i64)
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_else(|_| secs.to_string())
    };
    let (start, end) = (at(this_run.start), at(this_run.end));
    let out = out.display();
    println!("  read it back as from AWS (the demo's directory keeps the stream):");
    println!(
        "    kvs-emulator serve --data-dir {out} --port 4567 --access-key-id AKIAKVSDEMO0000READ \\\n      --secret-access-key demo-read-back-secret    # cargo run -p kvs-emulator -- serve ..."
    );
    println!(
        "    export AWS_ACCESS_KEY_ID=AKIAKVSDEMO0000READ AWS_SECRET_ACCESS_KEY=demo-read-back-secret AWS_DEFAULT_REGION=us-west-2"
    );
    println!(
        "    aws kinesis-video-archived-media list-fragments --stream-name {stream} \\\n      --endpoint-url https://127.0.0.1:4567 --ca-bundle {out}/ca.pem"
    );
    println!(
        "    aws kinesis-video-archived-media get-clip --stream-name {stream} \\\n      --endpoint-url https://127.0.0.1:4567 --ca-bundle {out}/ca.pem \\\n      --clip-fragment-selector 'FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={start},EndTimestamp={end}}}' \\\n      {out}/clips/read-back.mp4    # this run's fragments"
    );
    if this_run.first_left_out {
        println!(
            "    (a fragment of the run before began in the same second as this run's first: the range leaves both out)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn the_range_starts_at_the_second_of_this_run_s_first_fragment() {
        // The run before: fragments at 100.2 s and 102.2 s; this run started at 104.1 s.
        let stamps = [at(100_200), at(102_200), at(104_600), at(106_600)];
        let run = ThisRun::new(&stamps, at(104_100), at(107_900));
        assert_eq!(
            run,
            ThisRun {
                start: 104,
                end: 108,
                first_left_out: false
            }
        );
    }

    #[test]
    fn a_fragment_of_the_run_before_in_the_same_second_moves_the_start_past_it() {
        // The run before's last fragment began at 104.05 s, this run's first at 104.6 s.
        let stamps = [at(102_000), at(104_050), at(104_600), at(106_600)];
        let run = ThisRun::new(&stamps, at(104_300), at(107_900));
        assert_eq!(run.start, 105);
        assert!(run.first_left_out);
    }

    #[test]
    fn without_fragments_the_range_starts_when_the_run_did() {
        let run = ThisRun::new(&[], at(50_700), at(53_100));
        assert_eq!((run.start, run.end, run.first_left_out), (50, 54, false));
    }
}
