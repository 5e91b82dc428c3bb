//! The stream store's figures for `cargo bench -p kvs-emulator --bench stream_store`, behind
//! the `bench` feature: the store's parts are private, and measuring them alone (rather than
//! through a storage session in real time) gives their capacity. Not part of the API.

use std::time::{Duration, Instant};

use kvs_media::mkv::{self, VideoParams};

use crate::store::disk::StreamStore;
use crate::store::fragmenter::{Fragment, Fragmenter, FragmenterLimits};
use crate::store::transcode::{AacFrame, OpusToAac};

/// What [`measure`] found.
#[derive(Debug, Clone)]
pub struct StoreFigures {
    /// Seconds of media (H.264 320x240 at 25 fps, about 90 kbit/s, plus 48 kHz Opus) measured.
    pub media_seconds: u32,
    /// Opus packets (20 ms) transcoded to AAC.
    pub opus_packets: usize,
    /// Time spent transcoding them (one thread, CPU-bound).
    pub transcode: Duration,
    /// Fragments written.
    pub fragments: usize,
    /// Their bytes on disk.
    pub bytes: u64,
    /// Time cutting and writing them (each written, synced, renamed and indexed).
    pub write: Duration,
    /// Time reading them back as `GetMediaForFragmentList` does (file read, tags added).
    pub read: Duration,
    /// Images made as `GetImages` makes them (one a second of media, JPEG at quality 80, the
    /// stream's size), fragment files read included.
    pub images: usize,
    /// Time making them.
    pub images_time: Duration,
}

/// Transcodes, fragments, writes and reads back `media_seconds` (a multiple of 3) of the
/// sample clip's video with a 440 Hz Opus tone, in a store under `dir`.
///
/// # Panics
/// When the sample or the codecs fail: a benchmark has no way on.
pub fn measure(dir: &std::path::Path, media_seconds: u32) -> StoreFigures {
    let packets = tone_packets(media_seconds as usize);
    let mut transcoder = OpusToAac::new().expect("the Opus to AAC transcoder starts");
    let mut aac: Vec<AacFrame> = Vec::new();
    let started = Instant::now();
    for (i, packet) in packets.iter().enumerate() {
        transcoder.push(i as i64 * 20, packet, &mut aac);
    }
    let transcode = started.elapsed();

    let (params, video) = sample_video(media_seconds);
    let (store, _) = StreamStore::open(dir).expect("the store opens");
    let mut store = store;
    let started = Instant::now();
    let mut fragmenter = Fragmenter::new(FragmenterLimits::default());
    let mut audio = aac.into_iter().peekable();
    let mut written = Vec::new();
    let mut write = |fragment: Fragment, store: &mut StreamStore| {
        written.push(
            store
                .append(&fragment, Some(transcoder.params()))
                .expect("the fragment is written"),
        );
    };
    for (timestamp_ms, keyframe, data) in video {
        while let Some(frame) = audio.next_if(|a| a.timestamp_ms <= timestamp_ms) {
            fragmenter.audio(frame.timestamp_ms, frame.data);
        }
        fragmenter.video(timestamp_ms, timestamp_ms, keyframe, Some(&params), data);
        while let Some(fragment) = fragmenter.poll_fragment() {
            write(fragment, &mut store);
        }
    }
    fragmenter.finish();
    while let Some(fragment) = fragmenter.poll_fragment() {
        write(fragment, &mut store);
    }
    let write_time = started.elapsed();

    let started = Instant::now();
    let mut read_bytes = 0;
    for meta in &written {
        let path = store.path_of(&meta.fragment_number).expect("indexed");
        let file = std::fs::read(path).expect("the fragment reads");
        read_bytes += crate::store::tagged::tagged(file, meta)
            .expect("a fragment")
            .len();
    }
    let read = started.elapsed();
    assert!(read_bytes as u64 >= store.bytes());

    let started = Instant::now();
    let mut images = 0;
    let output = crate::images::Output {
        format: crate::images::Format::Jpeg { quality: 80 },
        size: crate::images::Size::Source,
    };
    for meta in &written {
        let path = store.path_of(&meta.fragment_number).expect("indexed");
        let file = std::fs::read(path).expect("the fragment reads");
        let offsets: Vec<i64> = (0..meta.fragment_length_ms).step_by(1000).collect();
        for image in crate::images::render(&file, &offsets, output) {
            image.expect("an image");
            images += 1;
        }
    }
    let images_time = started.elapsed();
    StoreFigures {
        media_seconds,
        opus_packets: packets.len(),
        transcode,
        fragments: written.len(),
        bytes: store.bytes(),
        write: write_time,
        read,
        images,
        images_time,
    }
}

/// 20 ms Opus packets of a 440 Hz tone, 48 kHz mono.
fn tone_packets(seconds: usize) -> Vec<Vec<u8>> {
    let mut encoder =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).expect("Opus");
    (0..seconds * 50)
        .map(|p| {
            let pcm: Vec<i16> = (0..960)
                .map(|i| {
                    let t = (p * 960 + i) as f64 / 48_000.0;
                    ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 12_000.0) as i16
                })
                .collect();
            encoder.encode_vec(&pcm, 4000).expect("Opus encodes")
        })
        .collect()
}

/// The sample clip's parameter sets, and its access units (AVCC) looped to `seconds`, with
/// their timestamps (ms) and keyframe flags.
fn sample_video(seconds: u32) -> (VideoParams, Vec<(i64, bool, Vec<u8>)>) {
    let units = kvs_media::h264::nal_units(kvs_media::sample::H264);
    let find = |kind: u8| {
        units
            .iter()
            .find(|u| u[0] & 0x1f == kind)
            .expect("the sample has SPS and PPS")
            .to_vec()
    };
    let params = VideoParams {
        width: 320,
        height: 240,
        sps: find(7),
        pps: find(8),
    };
    let aus = kvs_media::h264::access_units(kvs_media::sample::H264);
    let mut video = Vec::new();
    for round in 0..seconds as usize / 3 {
        for (i, au) in aus.iter().enumerate() {
            let timestamp_ms = ((round * aus.len() + i) * 40) as i64;
            let avcc = mkv::annex_b_to_avcc(&kvs_media::h264::nal_units(au));
            video.push((timestamp_ms, kvs_media::h264::is_keyframe(au), avcc));
        }
    }
    (params, video)
}
