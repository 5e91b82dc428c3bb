//! What `kvswebrtcstoragesink` costs over the library: the same encoded stream (the sample
//! clip, looped to `KVS_BENCH_SECONDS`, 12 s by default) ingested into an emulator twice per
//! round, once pushed through `kvs_webrtc_ingest`'s push API directly and once through
//! `kvswebrtcstoragesink` with `sync=false`, fed by a `gst_check::Harness` per pad (both as
//! fast as they take buffers: the library paces by timestamp), for
//! `KVS_BENCH_ROUNDS` rounds (3), interleaved.
//!
//! CPU is the run time of every thread of this process but the emulator's (its runtime's
//! threads are named `emulator`), from `/proc/self/task/*/schedstat`, over the whole session
//! (connect, join, media, end). Printed: CPU seconds of each path per round, the median, and
//! the element's overhead per buffer and in percent.
//!
//! `cargo bench -p gst-plugin-kvs-webrtc-storage --bench element_overhead`

#![allow(missing_docs, unreachable_pub, clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{audio_buffers, video_buffers, BusLog, Rig};
use gst::prelude::*;
use gst_check::Harness;
use kvs_webrtc_ingest::{AudioPacket, AudioSource, IngestState, VideoFrame, VideoSource};

/// CPU seconds of this process's threads but the emulator's.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| !name.starts_with("emulator"))
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 1e9
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The clip looped `loops` times: video and audio buffers in time order each, with their
/// timestamps moved on by the clip's length at each loop.
fn stream(loops: u64) -> (Vec<gst::Buffer>, Vec<gst::Buffer>) {
    let clip = gst::ClockTime::from_mseconds(3000);
    let shifted = |buffers: Vec<gst::Buffer>| {
        (0..loops)
            .flat_map(|n| {
                buffers.iter().map(move |b| {
                    let mut b = b.copy();
                    let pts = b.pts().unwrap_or_default() + clip * n;
                    b.get_mut().expect("a copy is writable").set_pts(pts);
                    b
                })
            })
            .collect::<Vec<_>>()
    };
    (shifted(video_buffers()), shifted(audio_buffers()))
}

fn timestamp(buffer: &gst::Buffer) -> Duration {
    Duration::from_nanos(buffer.pts().unwrap_or_default().nseconds())
}

/// The stream pushed through the library directly; its CPU seconds.
fn direct(rig: &Rig, video: &[gst::Buffer], audio: &[gst::Buffer]) -> f64 {
    let before = cpu_seconds();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kvs-direct")
        .enable_all()
        .build()
        .expect("a runtime");
    let (video_source, video_writer) = VideoSource::push(8);
    let (audio_source, audio_writer) = AudioSource::push(16);
    let client = rig.setup.client();
    let session = runtime
        .block_on(
            client
                .ingest()
                .channel(&rig.setup.channel)
                .video(video_source)
                .audio(audio_source)
                .send(),
        )
        .expect("the session starts");
    let mut stats = session.watch_stats();
    runtime
        .block_on(stats.wait_for(|s| s.state == IngestState::Streaming))
        .expect("streaming");
    // Both tracks from one thread, interleaved by time, as the element's two streaming
    // threads would deliver them.
    let write_audio = |packet: &gst::Buffer| {
        let data = packet.map_readable().expect("readable").to_vec();
        let packet = AudioPacket {
            data,
            timestamp: timestamp(packet),
        };
        runtime
            .block_on(audio_writer.write(packet))
            .expect("written");
    };
    let mut audio_iter = audio.iter().peekable();
    for picture in video {
        while let Some(packet) = audio_iter.next_if(|p| p.pts() <= picture.pts()) {
            write_audio(packet);
        }
        let data = picture.map_readable().expect("readable").to_vec();
        let frame = VideoFrame {
            data,
            timestamp: timestamp(picture),
        };
        runtime
            .block_on(video_writer.write(frame))
            .expect("written");
    }
    audio_iter.for_each(write_audio);
    drop((video_writer, audio_writer));
    let sent = runtime.block_on(session.wait()).expect("the session ends");
    assert_eq!(sent.video.frames_sent, video.len() as u64);
    cpu_seconds() - before
}

/// The stream through `kvswebrtcstoragesink`, pushed into its pads by a `gst_check::Harness`
/// each from this thread, interleaved as for [`direct`]; its CPU seconds.
fn element(rig: &Rig, video: &[gst::Buffer], audio: &[gst::Buffer]) -> f64 {
    let before = cpu_seconds();
    let sink = rig.element();
    sink.set_property("sync", false);
    let bus = gst::Bus::new();
    sink.set_bus(Some(&bus));
    let mut bus = BusLog::new(bus);
    for pad in ["video", "audio"] {
        sink.request_pad_simple(pad).expect("a pad");
    }
    // Pushed from one thread: the sinks do not preroll (as under any harness).
    for child in sink.downcast_ref::<gst::Bin>().expect("a bin").children() {
        child.set_property("async", false);
    }
    let mut video_in = Harness::with_element(&sink, Some("video"), None);
    let mut audio_in = Harness::with_element(&sink, Some("audio"), None);
    video_in.set_src_caps_str(common::VIDEO_CAPS);
    audio_in.set_src_caps_str(common::AUDIO_CAPS);
    let mut audio_iter = audio.iter().peekable();
    for picture in video {
        while let Some(packet) = audio_iter.next_if(|p| p.pts() <= picture.pts()) {
            audio_in.push(packet.clone()).expect("pushed");
        }
        video_in.push(picture.clone()).expect("pushed");
    }
    for packet in audio_iter {
        audio_in.push(packet.clone()).expect("pushed");
    }
    audio_in.push_event(gst::event::Eos::new());
    video_in.push_event(gst::event::Eos::new());
    bus.until_within(Duration::from_secs(120), "EOS", |m| {
        matches!(m.view(), gst::MessageView::Eos(_))
    });
    let stats = sink.property::<gst::Structure>("stats");
    drop((video_in, audio_in));
    assert_eq!(
        stats.get::<u64>("video-frames-sent"),
        Ok(video.len() as u64),
        "{stats}"
    );
    cpu_seconds() - before
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    common::init();
    let seconds = env_number("KVS_BENCH_SECONDS", 12);
    let rounds = env_number("KVS_BENCH_ROUNDS", 3);
    let (video, audio) = stream(seconds.div_ceil(3));
    let buffers = (video.len() + audio.len()) as f64;
    println!(
        "element_overhead: {} s of video ({} pictures) and audio ({} packets), {rounds} rounds",
        seconds.div_ceil(3) * 3,
        video.len(),
        audio.len()
    );
    let (mut direct_cpu, mut element_cpu) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let rig = Rig::start(&format!("direct-{round}"));
        let d = direct(&rig, &video, &audio);
        drop(rig);
        let rig = Rig::start(&format!("element-{round}"));
        let e = element(&rig, &video, &audio);
        drop(rig);
        println!("round {round}: library directly {d:.3} s CPU, through the element {e:.3} s CPU");
        direct_cpu.push(d);
        element_cpu.push(e);
    }
    let (d, e) = (median(&mut direct_cpu), median(&mut element_cpu));
    println!(
        "median: library directly {d:.3} s, through the element {e:.3} s: +{:.1} % \
         ({:+.1} µs per buffer)",
        (e - d) / d * 100.0,
        (e - d) / buffers * 1e6
    );
}
