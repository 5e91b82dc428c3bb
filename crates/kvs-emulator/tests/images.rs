//! GetImages end to end (issue #23): the real ingestion client streams the sample clip, then
//! boto3's `get_images` (through the endpoint `GetDataEndpoint(APIName=GET_IMAGES)` returns)
//! asks for JPEG and PNG images, paged, scaled and stretched, and for bad input
//! (`tests/python/images.py`). Here each image is decoded and compared with the frame ffmpeg
//! extracts from the source clip at the same time: the right size, not blank, and closest to
//! its own frame.

use std::path::Path;
use std::process::Command;

use image::RgbImage;
use kvs_emulator::SessionState;
use kvs_test_support::store::{stored_fragments, wait_for_fragments};
use kvs_test_support::IngestSetup;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/images.py");
const FRAME_MS: i64 = 1000 / kvs_media::sample::H264_FPS as i64;
/// The most an image may differ from its source frame, mean per channel value out of 255:
/// JPEG at 80 of the test pattern's sharp edges (about 2), two decoders' YUV to RGB, and for
/// scaled images two resamplers (image's triangle filter, ffmpeg's bicubic). Measured: at
/// most 3.3. Frames of the clip half a second apart differ by 7 to 23.
const MAX_DIFFERENCE: f64 = 6.0;
/// The same for JPEG at quality 10 (measured: about 13.5).
const MAX_DIFFERENCE_AT_QUALITY_10: f64 = 20.0;

/// The source clip's frames as ffmpeg decodes them, scaled to `width` × `height`.
fn source_frames(clip: &Path, width: u32, height: u32) -> Vec<RgbImage> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(clip)
        .args([
            "-vf",
            &format!("scale={width}:{height}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs (cargo xtask test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (width * height * 3) as usize;
    out.stdout
        .chunks_exact(size)
        .map(|frame| RgbImage::from_raw(width, height, frame.to_vec()).unwrap())
        .collect()
}

fn difference(a: &RgbImage, b: &RgbImage) -> f64 {
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

/// The spread of a picture's values: a blank (one-colour) picture has none.
fn spread(picture: &RgbImage) -> f64 {
    let values = picture.as_raw();
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
    (values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / values.len() as f64)
        .sqrt()
}

/// Check every saved image of `kind`: its size, not blank, within `bound` of the
/// source frame at its time, and that frame (give or take one) the closest of the clip.
/// Returns how many were checked and the largest difference.
fn check_images(
    dir: &Path,
    kind: &str,
    first_ms: i64,
    frames: &[RgbImage],
    bound: f64,
) -> (usize, f64) {
    let (width, height) = frames[0].dimensions();
    let mut checked = 0;
    let mut largest: f64 = 0.0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let Some(time) = name.strip_prefix(&format!("{kind}-")) else {
            continue;
        };
        let time: i64 = time.parse().unwrap();
        let picture = image::open(&path).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (width, height), "{name}");
        assert!(spread(&picture) > 20.0, "{name} is blank");
        let count = frames.len() as i64;
        let expected = ((time - first_ms + FRAME_MS / 2) / FRAME_MS).rem_euclid(count);
        let (closest, _) = frames
            .iter()
            .enumerate()
            .map(|(i, f)| (i as i64, difference(&picture, f)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let off_by = (closest - expected)
            .rem_euclid(count)
            .min((expected - closest).rem_euclid(count));
        let own = (-1..=1)
            .map(|d| difference(&picture, &frames[(expected + d).rem_euclid(count) as usize]))
            .fold(f64::MAX, f64::min);
        println!("{name}: frame {expected}, closest {closest}, difference {own:.2}");
        assert!(
            off_by <= 1,
            "{name}: the closest frame is {closest}, not {expected}"
        );
        assert!(own < bound, "{name}: {own:.2} from its frame");
        largest = largest.max(own);
        checked += 1;
    }
    (checked, largest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_images_returns_the_frames_of_the_stream_at_the_sampled_times() {
    let setup = IngestSetup::start("images-cam").await;
    let session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    wait_for_fragments(&setup.emulator, "images-cam-stream", 5).await;
    session.stop().await.expect("a clean stop");
    setup
        .newest_session_when("the storage session ended", |s| {
            s.state == SessionState::Ended
        })
        .await;
    let stored = stored_fragments(&setup.emulator, "images-cam-stream").await;

    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut command = setup.emulator.python_command(SCRIPT, home.path());
    command
        .env("KVS_STREAM", "images-cam-stream")
        .env("KVS_EXPECTED", serde_json::to_string(&stored).unwrap())
        .env("KVS_IMAGES_DIR", dir.path());
    let out = setup
        .emulator
        .run_python(command, "images: all checks passed")
        .await;
    println!("{out}");

    let first_ms = stored[0]["producerTimestampMs"].as_i64().unwrap();
    let clip = setup.file("clip.h264");
    for (kind, width, height, at_least, bound) in [
        ("jpeg", 320, 240, 8, MAX_DIFFERENCE),
        ("png", 160, 120, 3, MAX_DIFFERENCE),
        ("stretched", 100, 50, 3, MAX_DIFFERENCE_AT_QUALITY_10),
    ] {
        let frames = source_frames(&clip, width, height);
        assert_eq!(frames.len(), 75);
        let (checked, largest) = check_images(dir.path(), kind, first_ms, &frames, bound);
        println!("{kind}: {checked} images within {largest:.2} of their frames");
        assert!(checked >= at_least, "{checked} {kind} images");
    }
}
