//! What the emulator's stream store keeps, read through its inspection API and checked with
//! ffprobe and ffmpeg ([`crate::recording`]).

use serde_json::Value;

use crate::recording::{decode_errors, probe, tone_frequency};
use crate::Service;

/// The fragments the inspection API lists for `stream` (oldest first; empty when none).
pub async fn stored_fragments(service: &Service, stream: &str) -> Vec<Value> {
    service
        .inspect(&format!("streams/{stream}/fragments"))
        .await["fragments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Wait (bounded) until `stream` keeps at least `count` fragments; returns them.
///
/// # Panics
/// When it does not within [`crate::WAIT`].
pub async fn wait_for_fragments(service: &Service, stream: &str, count: usize) -> Vec<Value> {
    crate::wait_for(&format!("{count} fragments stored in {stream}"), || async {
        let stored = stored_fragments(service, stream).await;
        if stored.len() >= count {
            Ok(stored)
        } else {
            Err(stored)
        }
    })
    .await
}

/// Checks what every stored fragment of the sample clip (`kvs_media::sample`: 25 fps, a
/// keyframe every second) must be: numbers that grow,
/// producer timestamps that follow on from each other, a length of one GOP (1 s), a size equal
/// to its file's, and a file that ffprobe reads as H.264 + AAC of that length and that ffmpeg
/// decodes without a word.
///
/// # Panics
/// When one of them does not hold.
pub fn assert_sample_fragments(fragments: &[Value]) {
    let numbers: Vec<u128> = fragments
        .iter()
        .map(|f| f["fragmentNumber"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    for pair in fragments.windows(2) {
        let end = pair[0]["producerTimestampMs"].as_i64().unwrap()
            + pair[0]["fragmentLengthMs"].as_i64().unwrap();
        assert_eq!(
            pair[1]["producerTimestampMs"].as_i64().unwrap(),
            end,
            "one fragment starts where the last ended"
        );
        assert!(pair[0]["serverTimestampMs"].as_i64() < pair[1]["serverTimestampMs"].as_i64());
    }
    for fragment in fragments {
        let length = fragment["fragmentLengthMs"].as_i64().unwrap();
        assert!((960..=1040).contains(&length), "one GOP: {fragment}");
        let file = std::path::PathBuf::from(fragment["file"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            fragment["fragmentSizeBytes"].as_u64().unwrap()
        );
        let probe = probe(&file);
        assert_eq!(probe.codecs, ["h264", "aac"], "{}", file.display());
        assert!(
            (probe.duration - length as f64 / 1000.0).abs() < 0.05,
            "ffprobe says {} s for a {length} ms fragment",
            probe.duration
        );
        assert_eq!(decode_errors(&file), "", "{} decodes", file.display());
    }
}

/// Each fragment's audio carries the sample clip's 440 Hz tone (within 5 Hz).
///
/// # Panics
/// When one does not.
pub fn assert_sample_tone(fragments: &[Value]) {
    for fragment in fragments {
        let file = std::path::PathBuf::from(fragment["file"].as_str().unwrap_or_default());
        let hz = tone_frequency(&file);
        assert!(
            (hz - 440.0).abs() < 5.0,
            "the clip's 440 Hz tone is in {}: {hz} Hz",
            file.display()
        );
    }
}
