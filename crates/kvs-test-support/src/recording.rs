//! What the emulator recorded, read by independent tools: `ffprobe` for the streams and the
//! duration, `ffmpeg` for a full decode (both from Debian's `ffmpeg`, which `cargo xtask test`
//! installs).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What ffprobe says about a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The streams' codec names, in order (`["h264", "opus"]`).
    pub codecs: Vec<String>,
    /// The container's duration in seconds.
    pub duration: f64,
}

/// `ffprobe` on a finalized recording.
///
/// # Panics
/// When ffprobe cannot run or fails, when it complains about anything (a finalized recording
/// has real element sizes, so it has nothing to warn about), or reports no duration.
pub fn probe(file: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs (cargo xtask test installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "ffprobe complains about {}",
        file.display()
    );
    let info: Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let codecs = info["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let duration = info["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("ffprobe reports a duration: {info}"));
    Probe { codecs, duration }
}

/// The video stream's codec name and the frames ffprobe can read of it (`-count_frames`):
/// for recordings that were never finalized (a `kill -9`).
///
/// # Panics
/// When ffprobe cannot run or its answer has no video stream.
pub fn readable_video_frames(file: &Path) -> (String, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (codec, frames) = stdout.split_once(',').unwrap_or_else(|| {
        panic!(
            "ffprobe gives codec,frames for {}: {stdout:?}",
            file.display()
        )
    });
    let frames = frames
        .parse()
        .unwrap_or_else(|_| panic!("a frame count: {stdout:?}"));
    (codec.to_owned(), frames)
}

/// What `ffmpeg -v error` says while decoding a recording completely: empty when every frame
/// decodes.
///
/// # Panics
/// When ffmpeg cannot run or cannot open the file at all.
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The frequency of the tone in a file's first audio track, from the zero crossings of its
/// first channel as `ffmpeg` decodes it (48 kHz), its first 100 ms (an encoder's priming)
/// left out.
///
/// # Panics
/// When ffmpeg cannot decode the audio or there is less than 200 ms of it.
pub fn tone_frequency(file: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg cannot decode the audio of {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .skip(4800)
        .collect();
    assert!(pcm.len() >= 4800, "{} has too little audio", file.display());
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (pcm.len() as f64 / 48_000.0)
}

/// The one recording in a channel's directory (`<recordings>/<channel>/`).
///
/// # Panics
/// When the directory cannot be read or holds no file.
pub fn only_recording(channel_dir: &Path) -> PathBuf {
    std::fs::read_dir(channel_dir)
        .unwrap_or_else(|e| panic!("the recordings of {}: {e}", channel_dir.display()))
        .next()
        .unwrap_or_else(|| panic!("a recording in {}", channel_dir.display()))
        .expect("a directory entry")
        .path()
}

/// The one recording in `channel_dir` holds the 3 s sample clip: ffprobe finds H.264 and Opus,
/// a duration of 3 s, and nothing to complain about.
///
/// # Panics
/// When it does not.
pub fn assert_sample_recording(channel_dir: &Path) {
    let found = probe(&only_recording(channel_dir));
    assert_eq!(found.codecs, ["h264", "opus"]);
    assert!(
        (2.7..=3.3).contains(&found.duration),
        "3 s of media recorded, ffprobe says {}",
        found.duration
    );
}
