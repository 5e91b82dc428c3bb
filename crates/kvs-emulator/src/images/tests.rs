use serde_json::{json, Map, Value};

use super::*;

/// A request body over 10 s from `t = 1000 s`.
fn body() -> Map<String, Value> {
    json!({
        "StreamName": "cam",
        "ImageSelectorType": "PRODUCER_TIMESTAMP",
        "StartTimestamp": 1000.0,
        "EndTimestamp": 1010.0,
        "Format": "JPEG",
    })
    .as_object()
    .unwrap()
    .clone()
}

fn with(changes: Value) -> Map<String, Value> {
    let mut body = body();
    for (k, v) in changes.as_object().unwrap() {
        body.insert(k.clone(), v.clone());
    }
    body
}

#[test]
fn a_request_is_read_with_its_defaults() {
    let request = parse(&body()).unwrap();
    assert_eq!(
        request,
        Request {
            kind: TimestampKind::Producer,
            start_ms: 1_000_000,
            from_ms: 1_000_000,
            end_ms: 1_010_000,
            interval_ms: DEFAULT_INTERVAL_MS,
            page: 25,
            max_results: 25,
            output: Output {
                format: Format::Jpeg { quality: 80 },
                size: Size::Source,
            },
        }
    );
    let request = parse(&with(json!({
        "ImageSelectorType": "SERVER_TIMESTAMP", "Format": "PNG", "SamplingInterval": 200,
        "HeightPixels": 120, "MaxResults": 100,
    })))
    .unwrap();
    assert_eq!(request.kind, TimestampKind::Server);
    assert_eq!(
        request.output,
        Output {
            format: Format::Png,
            size: Size::Height(120)
        }
    );
    assert_eq!(
        (request.interval_ms, request.page, request.max_results),
        (200, 25, 100),
        "pages hold 25 at most; the quotas charge what was asked"
    );
    let request = parse(&with(json!({
        "FormatConfig": {"JPEGQuality": "7"}, "WidthPixels": 3840, "HeightPixels": 2160,
        "MaxResults": 3,
    })))
    .unwrap();
    assert_eq!(request.output.format, Format::Jpeg { quality: 7 });
    assert_eq!(
        request.output.size,
        Size::Exact {
            width: 3840,
            height: 2160
        }
    );
    assert_eq!((request.page, request.max_results), (3, 3));
}

#[test]
fn each_bad_input_is_refused_with_the_rule_it_breaks() {
    let cases = [
        (json!({"EndTimestamp": 1300.001}), "at most 300 s"),
        (json!({"EndTimestamp": 999.0}), "must not be after"),
        (
            json!({"StartTimestamp": "yesterday"}),
            "StartTimestamp is required",
        ),
        (json!({"SamplingInterval": 199}), "at least 200 ms"),
        (json!({"Format": "GIF"}), "enum value set: [JPEG, PNG]"),
        (json!({"ImageSelectorType": "NOW"}), "imageSelectorType"),
        (
            json!({"WidthPixels": 100}),
            "WidthPixels needs HeightPixels",
        ),
        (
            json!({"WidthPixels": 3841, "HeightPixels": 100}),
            "between 1 and 3840",
        ),
        (json!({"HeightPixels": 2161}), "between 1 and 2160"),
        (json!({"HeightPixels": 0}), "between 1 and 2160"),
        (json!({"FormatConfig": {"JPEGQuality": "0"}}), "JPEGQuality"),
        (
            json!({"FormatConfig": {"JPEGQuality": "101"}}),
            "JPEGQuality",
        ),
        (
            json!({"FormatConfig": {"JPEGQuality": "80", "Other": "1"}}),
            "only key",
        ),
        (json!({"MaxResults": 0}), "between 1 and 100"),
        (json!({"MaxResults": 101}), "between 1 and 100"),
        (json!({"NextToken": "junk"}), "NextToken"),
        (json!({"NextToken": make_token(999_000)}), "NextToken"),
        (json!({"NextToken": make_token(1_010_001)}), "NextToken"),
    ];
    for (change, words) in cases {
        let Err(err) = parse(&with(change.clone())) else {
            panic!("{change} was accepted");
        };
        assert_eq!(err.code, "InvalidArgumentException", "{change}");
        assert!(err.message.contains(words), "{change}: {}", err.message);
    }
    // The ends of each bound are allowed.
    for change in [
        json!({"EndTimestamp": 1300.0}),
        json!({"SamplingInterval": 200}),
        json!({"FormatConfig": {"JPEGQuality": "100"}}),
        json!({"NextToken": make_token(1_010_000)}),
    ] {
        if let Err(e) = parse(&with(change.clone())) {
            panic!("{change}: {}", e.message);
        }
    }
}

#[test]
fn sampling_starts_at_the_start_and_a_token_continues_where_the_page_stopped() {
    let mut request = parse(&with(json!({"SamplingInterval": 3000}))).unwrap();
    assert_eq!(
        sampled_times(&request),
        [1_000_000, 1_003_000, 1_006_000, 1_009_000]
    );
    request.from_ms = parse_token(&make_token(1_006_000), 1_000_000, 1_010_000).unwrap();
    assert_eq!(sampled_times(&request), [1_006_000, 1_009_000]);
    // A range shorter than the interval: the start alone.
    let short = parse(&with(
        json!({"EndTimestamp": 1000.1, "SamplingInterval": 500}),
    ))
    .unwrap();
    assert_eq!(sampled_times(&short), [1_000_000]);
}

#[test]
fn a_height_alone_keeps_the_aspect_and_both_stretch() {
    assert_eq!(Size::Height(120).of(320, 240), (160, 120));
    assert_eq!(Size::Height(1080).of(1280, 720), (1920, 1080));
    assert_eq!(Size::Height(1).of(1, 1000), (1, 1), "never zero wide");
    assert_eq!(
        Size::Exact {
            width: 100,
            height: 50
        }
        .of(320, 240),
        (100, 50)
    );
    assert_eq!(Size::Source.of(320, 240), (320, 240));
}

#[test]
fn a_sampled_time_belongs_to_the_fragment_whose_span_holds_it() {
    let fragment = |n: u32, producer: i64, server: i64| StoredFragment {
        meta: crate::store::FragmentMeta {
            fragment_number: n.to_string(),
            producer_timestamp_ms: producer,
            server_timestamp_ms: server,
            fragment_length_ms: 1000,
            fragment_size_bytes: 1,
        },
        file: std::path::PathBuf::new(),
    };
    let stored = [
        fragment(1, 0, 500),
        fragment(2, 1000, 1500),
        fragment(3, 3000, 3500),
    ];
    assert_eq!(
        covering_fragment(&stored, TimestampKind::Producer, 0),
        Some(0)
    );
    assert_eq!(
        covering_fragment(&stored, TimestampKind::Producer, 999),
        Some(0)
    );
    assert_eq!(
        covering_fragment(&stored, TimestampKind::Producer, 1000),
        Some(1)
    );
    assert_eq!(
        covering_fragment(&stored, TimestampKind::Producer, 2500),
        None,
        "a gap"
    );
    assert_eq!(
        covering_fragment(&stored, TimestampKind::Server, 1000),
        Some(0),
        "on the server clock"
    );
    assert_eq!(
        covering_fragment(&stored, TimestampKind::Producer, 4000),
        None,
        "past the end"
    );
}

#[cfg(feature = "images")]
mod rendering {
    use image::RgbImage;
    use kvs_media::h264;
    use kvs_media::mkv::{VideoParams, AUDIO_TRACK, VIDEO_TRACK};

    use super::super::render::render;
    use super::super::{Format, Output, Size};
    use crate::store::disk::StreamStore;
    use crate::store::fragmenter::{Fragment, StoredFrame};

    const FRAME_MS: i64 = 40;

    /// The sample clip (75 frames, 320×240, a keyframe every 25) as one stored fragment
    /// file, with audio beside it when `audio`, or audio alone when not `video`.
    fn sample_fragment_file(video: bool, audio: bool) -> Vec<u8> {
        let units = h264::access_units(kvs_media::sample::H264);
        let first = h264::nal_units(units[0]);
        let find = |kind| {
            first
                .iter()
                .find(|u| h264::nal_type(u) == kind)
                .unwrap()
                .to_vec()
        };
        let mut frames = Vec::new();
        for (i, unit) in units.iter().enumerate() {
            let nals = h264::nal_units(unit);
            if video {
                frames.push(StoredFrame {
                    track: VIDEO_TRACK,
                    timestamp_ms: i as i64 * FRAME_MS,
                    keyframe: nals.iter().any(|n| h264::nal_type(n) == h264::NAL_IDR),
                    data: kvs_media::mkv::annex_b_to_avcc(&nals),
                });
            }
            if audio {
                frames.push(StoredFrame {
                    track: AUDIO_TRACK,
                    timestamp_ms: i as i64 * FRAME_MS + 10,
                    keyframe: true,
                    data: vec![0xfc, 0xff, 0xfe],
                });
            }
        }
        let fragment = Fragment {
            producer_start_ms: 0,
            server_start_ms: 0,
            duration_ms: units.len() as i64 * FRAME_MS,
            video: VideoParams {
                width: 320,
                height: 240,
                sps: find(h264::NAL_SPS),
                pps: find(h264::NAL_PPS),
            },
            bytes: 0,
            frames,
        };
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = StreamStore::open(dir.path()).unwrap();
        let meta = store.append(&fragment, None).unwrap();
        std::fs::read(store.path_of(&meta.fragment_number).unwrap()).unwrap()
    }

    /// Every frame of the sample clip, decoded straight from its Annex-B.
    fn reference_frames() -> Vec<RgbImage> {
        let mut decoder = openh264::decoder::Decoder::new().unwrap();
        h264::access_units(kvs_media::sample::H264)
            .into_iter()
            .map(|unit| {
                let yuv = decoder.decode(unit).unwrap().expect("a picture per frame");
                super::super::render::to_rgb(&yuv)
            })
            .collect()
    }

    fn decoded(bytes: &[u8]) -> RgbImage {
        image::load_from_memory(bytes).unwrap().to_rgb8()
    }

    /// Mean absolute difference of two pictures of one size, per channel value.
    fn mad(a: &RgbImage, b: &RgbImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    const PNG: Output = Output {
        format: Format::Png,
        size: Size::Source,
    };

    #[test]
    fn each_image_is_the_frame_nearest_its_time() {
        let file = sample_fragment_file(true, true);
        let reference = reference_frames();
        assert_eq!(reference.len(), 75);
        assert!(
            mad(&reference[25], &reference[26]) > 0.0,
            "neighbours differ"
        );
        // Out of order on purpose for the decoder: 26 needs no restart after 25, 3 does.
        let offsets = [1000, 1019, 1021, 2960, 3000, 120];
        let expected = [25, 25, 26, 74, 74, 3];
        let images = render(&file, &offsets, PNG);
        for ((image, index), offset) in images.into_iter().zip(expected).zip(offsets) {
            let image = decoded(&image.unwrap());
            assert_eq!(image, reference[index], "{offset} ms is frame {index}");
        }
    }

    #[test]
    fn jpeg_is_scaled_keeping_the_aspect_or_stretched_and_its_quality_is_used() {
        let file = sample_fragment_file(true, false);
        let reference = reference_frames();
        let jpeg = |quality, size| Output {
            format: Format::Jpeg { quality },
            size,
        };
        let at = |output| render(&file, &[2000], output).remove(0).unwrap();
        let full = decoded(&at(jpeg(80, Size::Source)));
        let error = mad(&full, &reference[50]);
        // JPEG at 80 of the sharp-edged test pattern: about 2 of 255 per value.
        assert!(error < 4.0, "{error}");
        assert!(
            error < mad(&full, &reference[0]),
            "closer to its frame than to another"
        );
        let half = decoded(&at(jpeg(80, Size::Height(120))));
        assert_eq!(half.dimensions(), (160, 120));
        let scaled = image::imageops::resize(
            &reference[50],
            160,
            120,
            image::imageops::FilterType::Triangle,
        );
        assert!(mad(&half, &scaled) < 5.0);
        let stretched = decoded(&at(jpeg(
            80,
            Size::Exact {
                width: 100,
                height: 50,
            },
        )));
        assert_eq!(stretched.dimensions(), (100, 50));
        let (low, high) = (at(jpeg(5, Size::Source)), at(jpeg(95, Size::Source)));
        assert!(
            low.len() * 2 < high.len(),
            "quality 5: {} bytes, 95: {}",
            low.len(),
            high.len()
        );
        assert!(mad(&decoded(&low), &reference[50]) > error);
    }

    #[test]
    fn a_fragment_without_video_or_that_does_not_read_has_no_images() {
        let audio_only = sample_fragment_file(false, true);
        for image in render(&audio_only, &[0, 1000], PNG) {
            assert!(image.unwrap_err().to_string().contains("no video"));
        }
        let garbage = render(b"not matroska at all", &[0], PNG).remove(0);
        assert!(garbage.unwrap_err().to_string().contains("does not read"));
    }
}
