//! Fragmented MP4 (ISO/IEC 14496-12, the ISO BMFF "fMP4" that GetClip, HLS with
//! `FRAGMENTED_MP4` and DASH serve): an **init segment** (`ftyp` + `moov` with an `avc1`/`avcC`
//! video track and an optional `mp4a`/`esds` AAC track, `mvex` for fragments) and **media
//! segments** (`moof` + `mdat`, one per stored fragment or GOP). GetClip concatenates the init
//! segment and one media segment per fragment; HLS/DASH can serve the same pieces apart
//! (`getMP4InitFragment.mp4`, `getMP4MediaFragment.mp4`).
//!
//! Hand-written boxes, not a crate. Looked at by their docs only (none was tried): `mp4` 0.14
//! (alfg/mp4-rust) has box structs that implement `WriteBox`, `moof` among them, but its
//! `Mp4Writer` writes progressive MP4 only, so the fragment layout (data offsets, `tfdt`, sample
//! flags) would still be ours to get right; `mp4-atom` and `muxide` were not evaluated in
//! depth. None of them is in the workspace's lock file, and the boxes GetClip needs fit in this
//! one file with no new dependency tree to build. What is written here is checked by
//! independent readers: ffprobe (codecs, each stream's duration), a full ffmpeg decode and a
//! Python box walk of the sample flags (`tests/python/get_clip.py`, run by
//! `tests/stream_store.rs`), plus the unit tests below.
//!
//! Track 1 is video at timescale 90 000, track 2 audio at its sample rate. Sample times are
//! decode times in the track's timescale; keyframes are sync samples (every other video sample
//! is flagged non-sync), so players can seek.

/// Track ID of the video track (as in the stored fragments).
pub(crate) const VIDEO_TRACK_ID: u32 = 1;
/// Track ID of the audio track.
pub(crate) const AUDIO_TRACK_ID: u32 = 2;
/// The video track's timescale (ticks per second).
pub(crate) const VIDEO_TIMESCALE: u32 = 90_000;

/// The H.264 track of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VideoTrack {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15), as Matroska's codec private data.
    pub avcc: Vec<u8>,
}

/// The AAC track of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AudioTrack {
    /// The AudioSpecificConfig (ISO/IEC 14496-3).
    pub audio_specific_config: Vec<u8>,
    /// Sampling frequency in Hz: the track's timescale.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
}

/// One sample of a media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Whether it is a sync sample (a keyframe; every AAC frame is one).
    pub sync: bool,
    /// The sample's bytes (AVCC length-prefixed NAL units for video, a raw AAC frame for audio).
    pub data: Vec<u8>,
}

/// One track's run of samples in a media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackRun {
    /// [`VIDEO_TRACK_ID`] or [`AUDIO_TRACK_ID`].
    pub track_id: u32,
    /// The first sample's decode time, in the track's timescale, from the clip's start.
    pub base_decode_time: u64,
    /// The samples, in decode order.
    pub samples: Vec<Sample>,
}

fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32 + 8).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

fn full_box(kind: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload.len() + 4);
    body.push(version);
    body.extend_from_slice(&flags.to_be_bytes()[1..]);
    body.extend_from_slice(payload);
    boxed(kind, &body)
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn matrix() -> Vec<u8> {
    MATRIX.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn mvhd(next_track_id: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0; 8]); // creation, modification time
    p.extend_from_slice(&1000u32.to_be_bytes()); // timescale
    p.extend_from_slice(&0u32.to_be_bytes()); // duration: fragmented, in the fragments
    p.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    p.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(&matrix());
    p.extend_from_slice(&[0; 24]); // pre_defined
    p.extend_from_slice(&next_track_id.to_be_bytes());
    full_box(b"mvhd", 0, 0, &p)
}

fn tkhd(track_id: u32, audio: bool, width: u32, height: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&track_id.to_be_bytes());
    p.extend_from_slice(&[0; 4]); // reserved
    p.extend_from_slice(&0u32.to_be_bytes()); // duration
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&0u16.to_be_bytes()); // layer
    p.extend_from_slice(&u16::from(audio).to_be_bytes()); // alternate group
    p.extend_from_slice(&(if audio { 0x0100u16 } else { 0 }).to_be_bytes()); // volume
    p.extend_from_slice(&[0; 2]);
    p.extend_from_slice(&matrix());
    p.extend_from_slice(&(width << 16).to_be_bytes());
    p.extend_from_slice(&(height << 16).to_be_bytes());
    // Flags: enabled, in movie, in preview.
    full_box(b"tkhd", 0, 0x7, &p)
}

fn mdhd(timescale: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&timescale.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&0x55C4u16.to_be_bytes()); // language "und"
    p.extend_from_slice(&[0; 2]);
    full_box(b"mdhd", 0, 0, &p)
}

fn hdlr(handler: &[u8; 4], name: &str) -> Vec<u8> {
    let mut p = vec![0; 4];
    p.extend_from_slice(handler);
    p.extend_from_slice(&[0; 12]);
    p.extend_from_slice(name.as_bytes());
    p.push(0);
    full_box(b"hdlr", 0, 0, &p)
}

fn dinf() -> Vec<u8> {
    let url = full_box(b"url ", 0, 1, &[]);
    let dref = full_box(b"dref", 0, 0, &[1u32.to_be_bytes().to_vec(), url].concat());
    boxed(b"dinf", &dref)
}

/// `stbl` with the one sample entry and empty tables (samples are in the fragments).
fn stbl(entry: Vec<u8>) -> Vec<u8> {
    let stsd = full_box(
        b"stsd",
        0,
        0,
        &[1u32.to_be_bytes().to_vec(), entry].concat(),
    );
    let empty = 0u32.to_be_bytes();
    let stsz = full_box(b"stsz", 0, 0, &[0; 8]);
    boxed(
        b"stbl",
        &[
            stsd,
            full_box(b"stts", 0, 0, &empty),
            full_box(b"stsc", 0, 0, &empty),
            stsz,
            full_box(b"stco", 0, 0, &empty),
        ]
        .concat(),
    )
}

fn avc1(video: &VideoTrack) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&1u16.to_be_bytes()); // data reference index
    p.extend_from_slice(&[0; 16]);
    p.extend_from_slice(&(video.width as u16).to_be_bytes());
    p.extend_from_slice(&(video.height as u16).to_be_bytes());
    p.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi
    p.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&1u16.to_be_bytes()); // frame count
    p.extend_from_slice(&[0; 32]); // compressor name
    p.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
    p.extend_from_slice(&(-1i16).to_be_bytes());
    p.extend_from_slice(&boxed(b"avcC", &video.avcc));
    boxed(b"avc1", &p)
}

/// An MPEG-4 descriptor (ISO/IEC 14496-1): tag, a 4-byte size, payload.
fn descriptor(tag: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![
        tag,
        0x80 | ((len >> 21) & 0x7f) as u8,
        0x80 | ((len >> 14) & 0x7f) as u8,
        0x80 | ((len >> 7) & 0x7f) as u8,
        (len & 0x7f) as u8,
    ];
    out.extend_from_slice(payload);
    out
}

fn mp4a(audio: &AudioTrack) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&audio.channels.to_be_bytes());
    p.extend_from_slice(&16u16.to_be_bytes()); // sample size
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&((audio.sample_rate.min(0xffff)) << 16).to_be_bytes());
    let mut config = vec![
        0x40, // objectTypeIndication: MPEG-4 audio
        0x15, // streamType audio (5 << 2), upstream 0, reserved 1
        0, 0, 0, // bufferSizeDB
    ];
    config.extend_from_slice(&0u32.to_be_bytes()); // maxBitrate
    config.extend_from_slice(&0u32.to_be_bytes()); // avgBitrate
    config.extend_from_slice(&descriptor(0x05, &audio.audio_specific_config));
    let mut es = Vec::new();
    es.extend_from_slice(&(AUDIO_TRACK_ID as u16).to_be_bytes());
    es.push(0); // flags
    es.extend_from_slice(&descriptor(0x04, &config));
    es.extend_from_slice(&descriptor(0x06, &[0x02]));
    p.extend_from_slice(&full_box(b"esds", 0, 0, &descriptor(0x03, &es)));
    boxed(b"mp4a", &p)
}

fn trak(
    timescale: u32,
    media_header: Vec<u8>,
    handler: Vec<u8>,
    entry: Vec<u8>,
    head: Vec<u8>,
) -> Vec<u8> {
    let minf = boxed(b"minf", &[media_header, dinf(), stbl(entry)].concat());
    let mdia = boxed(b"mdia", &[mdhd(timescale), handler, minf].concat());
    boxed(b"trak", &[head, mdia].concat())
}

fn trex(track_id: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&track_id.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes()); // default sample description index
    p.extend_from_slice(&[0; 12]); // default duration, size, flags
    full_box(b"trex", 0, 0, &p)
}

/// The init segment: `ftyp` and `moov` for the video track and, if given, the audio track.
pub(crate) fn init_segment(video: &VideoTrack, audio: Option<&AudioTrack>) -> Vec<u8> {
    init_segment_of(Some(video), audio)
}

/// An init segment for any of the tracks: both (GetClip), or one alone, as HLS serves each
/// track's init fragment (`TrackNumber=1` or `2`). Track IDs stay [`VIDEO_TRACK_ID`] and
/// [`AUDIO_TRACK_ID`] either way.
pub(crate) fn init_segment_of(video: Option<&VideoTrack>, audio: Option<&AudioTrack>) -> Vec<u8> {
    let ftyp = boxed(b"ftyp", b"iso6\0\0\0\0iso6isomiso5avc1mp41");
    let mut moov = vec![mvhd(if audio.is_some() { 3 } else { 2 })];
    let mut mvex = Vec::new();
    if let Some(video) = video {
        let vmhd = full_box(b"vmhd", 0, 1, &[0; 8]);
        moov.push(trak(
            VIDEO_TIMESCALE,
            vmhd,
            hdlr(b"vide", "VideoHandler"),
            avc1(video),
            tkhd(VIDEO_TRACK_ID, false, video.width, video.height),
        ));
        mvex.push(trex(VIDEO_TRACK_ID));
    }
    if let Some(audio) = audio {
        let smhd = full_box(b"smhd", 0, 0, &[0; 4]);
        moov.push(trak(
            audio.sample_rate,
            smhd,
            hdlr(b"soun", "SoundHandler"),
            mp4a(audio),
            tkhd(AUDIO_TRACK_ID, true, 0, 0),
        ));
        mvex.push(trex(AUDIO_TRACK_ID));
    }
    moov.push(boxed(b"mvex", &mvex.concat()));
    [ftyp, boxed(b"moov", &moov.concat())].concat()
}

/// Sample flags: a sync sample depends on no other; any other sample depends on others and is
/// not a sync sample.
fn sample_flags(sync: bool) -> u32 {
    if sync {
        0x0200_0000
    } else {
        0x0101_0000
    }
}

fn moof(sequence: u32, runs: &[TrackRun], data_offsets: &[u32]) -> Vec<u8> {
    let mfhd = full_box(b"mfhd", 0, 0, &sequence.to_be_bytes());
    let trafs: Vec<u8> = runs
        .iter()
        .zip(data_offsets)
        .flat_map(|(run, &offset)| {
            // default-base-is-moof: data offsets count from the moof's first byte.
            let tfhd = full_box(b"tfhd", 0, 0x02_0000, &run.track_id.to_be_bytes());
            let tfdt = full_box(b"tfdt", 1, 0, &run.base_decode_time.to_be_bytes());
            let mut trun = Vec::new();
            trun.extend_from_slice(&(run.samples.len() as u32).to_be_bytes());
            trun.extend_from_slice(&offset.to_be_bytes());
            for sample in &run.samples {
                trun.extend_from_slice(&sample.duration.to_be_bytes());
                trun.extend_from_slice(&(sample.data.len() as u32).to_be_bytes());
                trun.extend_from_slice(&sample_flags(sample.sync).to_be_bytes());
            }
            // data-offset, sample-duration, sample-size, sample-flags present.
            let trun = full_box(b"trun", 0, 0x0701, &trun);
            boxed(b"traf", &[tfhd, tfdt, trun].concat())
        })
        .collect();
    boxed(b"moof", &[mfhd, trafs].concat())
}

/// One media segment: `moof` (sequence number `sequence`, from 1) and `mdat` with each run's
/// samples, run after run. Runs without samples are left out.
pub(crate) fn media_segment(sequence: u32, runs: &[TrackRun]) -> Vec<u8> {
    let runs: Vec<TrackRun> = runs
        .iter()
        .filter(|r| !r.samples.is_empty())
        .cloned()
        .collect();
    media_segment_with_empty_runs(sequence, &runs)
}

/// [`media_segment`] that keeps runs without samples, as a `traf` whose `trun` holds none: a
/// track's segment of a fragment in which the track had no frame (HLS and DASH list every
/// fragment in each track's playlist).
pub(crate) fn media_segment_with_empty_runs(sequence: u32, runs: &[TrackRun]) -> Vec<u8> {
    // The moof's size does not depend on the offsets' values: measure it, then write them.
    let moof_len = moof(sequence, runs, &vec![0; runs.len()]).len() as u32;
    let mut offsets = Vec::with_capacity(runs.len());
    let mut at = moof_len + 8;
    for run in runs {
        offsets.push(at);
        at += run.samples.iter().map(|s| s.data.len() as u32).sum::<u32>();
    }
    let data: Vec<u8> = runs
        .iter()
        .flat_map(|r| r.samples.iter().flat_map(|s| s.data.iter().copied()))
        .collect();
    [moof(sequence, runs, &offsets), boxed(b"mdat", &data)].concat()
}

/// The sampling frequency an AudioSpecificConfig gives (`None` for an escape value or one too
/// short).
pub(crate) fn aac_sample_rate(asc: &[u8]) -> Option<u32> {
    const RATES: [u32; 13] = [
        96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
        8_000, 7_350,
    ];
    let bits = u16::from_be_bytes([*asc.first()?, *asc.get(1)?]);
    if bits >> 11 == 31 {
        return None; // extended object type: not what the store writes
    }
    RATES.get(usize::from((bits >> 7) & 0xf)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boxes at the top of `bytes`: (type, payload).
    fn children(bytes: &[u8]) -> Vec<(String, &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            assert!(size >= 8 && at + size <= bytes.len(), "box at {at}: {size}");
            let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
            out.push((kind, &bytes[at + 8..at + size]));
            at += size;
        }
        out
    }

    fn kinds(bytes: &[u8]) -> Vec<String> {
        children(bytes).into_iter().map(|(k, _)| k).collect()
    }

    fn tracks() -> (VideoTrack, AudioTrack) {
        (
            VideoTrack {
                width: 320,
                height: 240,
                avcc: vec![
                    1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 2, 0x67, 0x42, 1, 0, 1, 0x68,
                ],
            },
            AudioTrack {
                audio_specific_config: vec![0x11, 0x90],
                sample_rate: 48_000,
                channels: 2,
            },
        )
    }

    #[test]
    fn the_init_segment_nests_its_boxes_and_sizes_them() {
        let (video, audio) = tracks();
        let init = init_segment(&video, Some(&audio));
        assert_eq!(kinds(&init), ["ftyp", "moov"]);
        let moov = children(&init)[1].1;
        assert_eq!(kinds(moov), ["mvhd", "trak", "trak", "mvex"]);
        let mvex = children(moov)[3].1;
        assert_eq!(kinds(mvex), ["trex", "trex"]);
        let video_only = init_segment(&video, None);
        assert_eq!(kinds(children(&video_only)[1].1), ["mvhd", "trak", "mvex"]);
        // The codec private data is carried whole.
        let find = |needle: &[u8]| init.windows(needle.len()).any(|w| w == needle);
        assert!(find(&[b"avcC".as_slice(), &video.avcc].concat()));
        assert!(find(&[0x05, 0x80, 0x80, 0x80, 0x02, 0x11, 0x90]));
    }

    #[test]
    fn data_offsets_point_at_each_runs_samples_in_the_mdat() {
        let run = |track_id, bytes: &[&[u8]], sync| TrackRun {
            track_id,
            base_decode_time: 7,
            samples: bytes
                .iter()
                .map(|b| Sample {
                    duration: 10,
                    sync,
                    data: b.to_vec(),
                })
                .collect(),
        };
        let segment = media_segment(
            3,
            &[
                run(VIDEO_TRACK_ID, &[b"VVV", b"WW"], false),
                run(AUDIO_TRACK_ID, &[b"AAAA"], true),
                run(9, &[], true),
            ],
        );
        assert_eq!(kinds(&segment), ["moof", "mdat"]);
        let moof = children(&segment)[0].1;
        assert_eq!(
            kinds(moof),
            ["mfhd", "traf", "traf"],
            "the empty run is left out"
        );
        for (i, expected) in [(1, &b"VVVWW"[..]), (2, b"AAAA")] {
            let traf = children(moof)[i].1;
            assert_eq!(kinds(traf), ["tfhd", "tfdt", "trun"]);
            let trun = children(traf)[2].1;
            let count = u32::from_be_bytes(trun[4..8].try_into().unwrap()) as usize;
            let offset = u32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
            let sizes: usize = (0..count)
                .map(|s| {
                    u32::from_be_bytes(trun[16 + s * 12..20 + s * 12].try_into().unwrap()) as usize
                })
                .sum();
            assert_eq!(&segment[offset..offset + sizes], expected);
            let flags = u32::from_be_bytes(trun[20..24].try_into().unwrap());
            assert_eq!(flags, sample_flags(i == 2));
        }
    }

    #[test]
    fn the_sample_rate_comes_from_the_audio_specific_config() {
        assert_eq!(aac_sample_rate(&[0x11, 0x90]), Some(48_000));
        assert_eq!(aac_sample_rate(&[0x12, 0x10]), Some(44_100));
        assert_eq!(aac_sample_rate(&[0x11]), None);
        assert_eq!(aac_sample_rate(&[0xf8, 0x00]), None);
    }
}
