//! The "stored stream": checks the H.264 and audio ([`AudioCodec::INGESTED`]) a storage session receives, keeps statistics and
//! records the session into a Matroska file once the first decodable keyframe arrives.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use kvs_media::h264::{self, NAL_IDR, NAL_PPS, NAL_SPS};
use kvs_media::mkv::{self, MkvWriter, VideoParams, AUDIO_TRACK, VIDEO_TRACK};
use kvs_media::AudioCodec;

use crate::store::feed::{StoreFeed, StoreStats};
use crate::store::writer::StoreWriter;

const MAX_VIOLATIONS: usize = 32;
const MAX_WIDTH: u32 = 1920;
const MAX_HEIGHT: u32 = 1920;

/// Statistics of one received track.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackStats {
    /// `H264`, or the audio codec's SDP name (`opus`), once media arrived.
    pub codec: Option<String>,
    /// Frames received.
    pub frames: u64,
    /// Keyframes (IDR access units) received; always 0 for audio.
    pub keyframes: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Wall-clock arrival of the first frame, milliseconds since the epoch.
    pub first_frame_unix_ms: Option<u64>,
    /// Media time covered, from the first to the last frame.
    pub duration_ms: u64,
    /// Frames not recorded (before the first keyframe, oversize, or after a recording error).
    pub frames_not_recorded: u64,
    /// The longest wall-clock wait between two frames arriving, in ms: a media gap (a path
    /// switch, a re-join) shows here.
    pub longest_gap_ms: u64,
    #[serde(skip)]
    first_media_us: Option<u64>,
    #[serde(skip)]
    last_arrival: Option<std::time::Instant>,
}

impl TrackStats {
    /// Count one received frame of `codec`.
    fn count(&mut self, codec: &str, len: usize, media_time_us: u64) {
        self.codec.get_or_insert_with(|| codec.to_owned());
        self.frames += 1;
        self.bytes += len as u64;
        self.first_frame_unix_ms.get_or_insert_with(unix_ms);
        let arrival = std::time::Instant::now();
        if let Some(last) = self.last_arrival.replace(arrival) {
            let gap = arrival.saturating_duration_since(last).as_millis() as u64;
            self.longest_gap_ms = self.longest_gap_ms.max(gap);
        }
        let first = *self.first_media_us.get_or_insert(media_time_us);
        self.duration_ms = media_time_us.saturating_sub(first) / 1000;
    }
}

/// What a storage session received, as the inspection API reports it.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaStats {
    /// The video track.
    pub video: TrackStats,
    /// The audio track.
    pub audio: TrackStats,
    /// Width from the first SPS.
    pub width: Option<u32>,
    /// Height from the first SPS.
    pub height: Option<u32>,
    /// H.264 profile name from the first SPS (e.g. `constrained-baseline`).
    pub profile: Option<String>,
    /// PLIs sent to the sender.
    pub keyframe_requests: u64,
    /// From the first PLI to the first IDR, in ms.
    pub time_to_first_keyframe_ms: Option<u64>,
    /// Every rule the media broke (what the service would refuse or not store).
    pub violations: Vec<String>,
    /// The recording file, once recording started.
    pub recording: Option<PathBuf>,
    /// Duration written into the finished recording, in ms.
    pub recorded_duration_ms: Option<i64>,
    /// What the session added to its Kinesis video stream, when the channel stores into one.
    pub store: Option<StoreStats>,
}

struct TrackClock {
    first_media_us: u64,
    offset_ms: i64,
}

/// IDR frames before any SPS and PPS that make a violation: the first may be a loss (of the
/// packet that carried them), and so, rarely, the one a keyframe request brings; three in a
/// row is a device that does not send them in-band.
const IDRS_WITHOUT_PARAMETER_SETS: u32 = 3;

/// Receives frames from one storage session.
pub(crate) struct MediaSink {
    stats: MediaStats,
    path: PathBuf,
    max_frame: usize,
    writer: Option<MkvWriter>,
    recording_failed: bool,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// A decodable IDR (with the parameter sets before it) arrived.
    seen_idr: bool,
    /// IDRs that came before any SPS and PPS (see [`IDRS_WITHOUT_PARAMETER_SETS`]).
    idrs_without_parameter_sets: u32,
    first_pli: Option<Instant>,
    record_start: Option<Instant>,
    video_clock: Option<TrackClock>,
    audio_clock: Option<TrackClock>,
    last_video_ms: Option<i64>,
    last_video_gap_ms: i64,
    /// The stream store this session feeds, if any, through its writer thread.
    store: Option<StoreWriter>,
    /// Wall clock at the recording's time 0: producer timestamps are counted from it.
    record_start_unix_ms: i64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl MediaSink {
    /// A sink that records into `path` once recording can start.
    pub(crate) fn new(path: PathBuf, max_frame: usize) -> Self {
        Self {
            stats: MediaStats::default(),
            path,
            max_frame,
            writer: None,
            recording_failed: false,
            sps: None,
            pps: None,
            seen_idr: false,
            idrs_without_parameter_sets: 0,
            first_pli: None,
            record_start: None,
            video_clock: None,
            audio_clock: None,
            last_video_ms: None,
            last_video_gap_ms: 40,
            store: None,
            record_start_unix_ms: 0,
        }
    }

    /// Also cut what is recorded into fragments of a stream's store (on a thread of its own:
    /// see [`StoreWriter`]).
    pub(crate) fn store_into(&mut self, feed: StoreFeed) {
        let writer = StoreWriter::spawn(feed);
        self.stats.store = Some(writer.stats());
        self.store = Some(writer);
    }

    /// The current statistics.
    pub(crate) fn stats(&self) -> &MediaStats {
        &self.stats
    }

    fn violation(&mut self, text: String) {
        if !self.stats.violations.contains(&text) && self.stats.violations.len() < MAX_VIOLATIONS {
            tracing::warn!(violation = %text, "storage session media rule broken");
            self.stats.violations.push(text);
        }
    }

    /// Note that a PLI was sent.
    pub(crate) fn keyframe_requested(&mut self, now: Instant) {
        self.stats.keyframe_requests += 1;
        self.first_pli.get_or_insert(now);
    }

    /// One H.264 access unit (Annex-B). Returns true when a keyframe should be requested.
    pub(crate) fn on_video(
        &mut self,
        data: &[u8],
        media_time_us: u64,
        arrival: Instant,
        contiguous: bool,
    ) -> bool {
        self.stats.video.count("H264", data.len(), media_time_us);

        let units = h264::nal_units(data);
        let mut has_idr = false;
        for unit in &units {
            match h264::nal_type(unit) {
                NAL_SPS => {
                    if self.sps.is_none() {
                        self.check_sps(unit);
                    }
                    self.sps = Some(unit.to_vec());
                }
                NAL_PPS => self.pps = Some(unit.to_vec()),
                NAL_IDR => has_idr = true,
                _ => {}
            }
        }
        let mut parameter_sets_lost = false;
        if has_idr {
            self.stats.video.keyframes += 1;
            if !self.seen_idr && (self.sps.is_none() || self.pps.is_none()) {
                // The packet that carried them may have been lost: when it was the stream's
                // first, nothing reveals the gap and no NACK brings it back. A keyframe is
                // asked for again; a device that never sends them in-band breaks the rule.
                self.idrs_without_parameter_sets += 1;
                parameter_sets_lost = true;
                if self.idrs_without_parameter_sets >= IDRS_WITHOUT_PARAMETER_SETS {
                    self.violation(format!(
                        "{IDRS_WITHOUT_PARAMETER_SETS} IDR frames in a row arrived without an \
                         SPS and a PPS before them"
                    ));
                }
            } else if !self.seen_idr {
                self.seen_idr = true;
                if let Some(pli) = self.first_pli {
                    self.stats.time_to_first_keyframe_ms =
                        Some(arrival.saturating_duration_since(pli).as_millis() as u64);
                }
            }
        }
        if data.len() > self.max_frame {
            self.stats.video.frames_not_recorded += 1;
            self.violation(format!(
                "a video frame of {} bytes exceeds the {} byte limit",
                data.len(),
                self.max_frame
            ));
            return false;
        }
        self.record_video(&units, has_idr, media_time_us, arrival);
        // Ask for a keyframe after loss, and while nothing decodable has arrived yet.
        !contiguous
            || parameter_sets_lost
            || (!self.seen_idr && self.writer.is_none() && self.stats.video.frames % 30 == 1)
    }

    fn check_sps(&mut self, unit: &[u8]) {
        let Some(sps) = h264::parse_sps(unit) else {
            self.violation("the SPS could not be parsed".to_owned());
            return;
        };
        self.stats.width = Some(sps.width);
        self.stats.height = Some(sps.height);
        match sps.allowed_profile() {
            Some(name) => self.stats.profile = Some(name.to_owned()),
            None => {
                self.stats.profile = Some(format!("profile_idc {}", sps.profile_idc));
                self.violation(format!(
                    "H.264 profile_idc {} is not an accepted profile",
                    sps.profile_idc
                ));
            }
        }
        if sps.width > MAX_WIDTH || sps.height > MAX_HEIGHT {
            self.violation(format!(
                "resolution {}x{} exceeds {MAX_WIDTH}x{MAX_HEIGHT}",
                sps.width, sps.height
            ));
        }
    }

    fn media_ok(&self) -> bool {
        self.stats.violations.is_empty()
    }

    fn record_video(
        &mut self,
        units: &[&[u8]],
        keyframe: bool,
        media_time_us: u64,
        arrival: Instant,
    ) {
        if self.writer.is_none() && !self.recording_failed && keyframe && self.media_ok() {
            if let (Some(sps), Some(pps), Some(w), Some(h)) =
                (&self.sps, &self.pps, self.stats.width, self.stats.height)
            {
                let params = VideoParams {
                    width: w,
                    height: h,
                    sps: sps.clone(),
                    pps: pps.clone(),
                };
                match create_recording(&self.path, &params) {
                    Ok((writer, path)) => {
                        self.path = path;
                        tracing::info!(path = %self.path.display(), "recording started");
                        self.writer = Some(writer);
                        self.record_start = Some(arrival);
                        self.record_start_unix_ms = unix_ms() as i64;
                        self.video_clock = Some(TrackClock {
                            first_media_us: media_time_us,
                            offset_ms: 0,
                        });
                        self.stats.recording = Some(self.path.clone());
                    }
                    Err(e) => self.recording_error(&e),
                }
            }
        }
        let (Some(clock), Some(_)) = (&self.video_clock, &self.writer) else {
            self.stats.video.frames_not_recorded += 1;
            return;
        };
        let ts = clock.offset_ms + (media_time_us as i64 - clock.first_media_us as i64) / 1000;
        if let Some(last) = self.last_video_ms {
            if ts > last {
                self.last_video_gap_ms = (ts - last).min(1000);
            }
        }
        self.last_video_ms = Some(ts);
        // Parameter sets travel in CodecPrivate; in-band copies stay, so each keyframe decodes alone.
        let avcc = mkv::annex_b_to_avcc(units);
        let end = ts + self.last_video_gap_ms;
        if let Some(writer) = self.writer.as_mut() {
            if let Err(e) = writer.write_frame(VIDEO_TRACK, ts, end, keyframe, &avcc) {
                self.recording_error(&e);
            }
        }
        if let Some(feed) = self.store.as_mut() {
            let params = match (&self.sps, &self.pps, self.stats.width, self.stats.height) {
                (Some(sps), Some(pps), Some(width), Some(height)) if keyframe => {
                    Some(VideoParams {
                        width,
                        height,
                        sps: sps.clone(),
                        pps: pps.clone(),
                    })
                }
                _ => None,
            };
            let producer_ms = self.record_start_unix_ms + ts;
            feed.video(unix_ms() as i64, producer_ms, keyframe, params, avcc);
            if keyframe {
                self.stats.store = Some(feed.stats());
            }
        }
    }

    /// One audio packet ([`AudioCodec::INGESTED`]).
    pub(crate) fn on_audio(&mut self, data: &[u8], media_time_us: u64, arrival: Instant) {
        let codec = AudioCodec::INGESTED;
        self.stats
            .audio
            .count(codec.sdp_name(), data.len(), media_time_us);
        let Some(start) = self.record_start else {
            self.stats.audio.frames_not_recorded += 1;
            return;
        };
        let clock = self.audio_clock.get_or_insert_with(|| TrackClock {
            first_media_us: media_time_us,
            offset_ms: arrival.saturating_duration_since(start).as_millis() as i64,
        });
        let ts = clock.offset_ms + (media_time_us as i64 - clock.first_media_us as i64) / 1000;
        if ts < 0 || data.len() > self.max_frame {
            self.stats.audio.frames_not_recorded += 1;
            return;
        }
        if let Some(writer) = self.writer.as_mut() {
            let end = ts + codec.nominal_frame().as_millis() as i64;
            if let Err(e) = writer.write_frame(AUDIO_TRACK, ts, end, true, data) {
                self.recording_error(&e);
            }
        }
        if let Some(feed) = self.store.as_mut() {
            feed.audio(unix_ms() as i64, self.record_start_unix_ms + ts, data);
        }
    }

    fn recording_error(&mut self, e: &std::io::Error) {
        tracing::error!(path = %self.path.display(), error = %e, "recording failed; media is still counted");
        self.recording_failed = true;
        self.writer = None;
        self.violation(format!("recording to {} failed: {e}", self.path.display()));
    }

    /// Finalize the recording and return the final statistics. Blocks until the store's
    /// writer has written what it was handed: call it off the runtime.
    pub(crate) fn finish(mut self) -> MediaStats {
        if self.stats.video.frames > 0 && self.stats.audio.frames == 0 {
            self.violation(format!(
                "no {} audio was received; the service needs both tracks",
                AudioCodec::INGESTED
            ));
        }
        if self.stats.audio.frames > 0 && self.stats.video.frames == 0 {
            self.violation("no H.264 video was received; the service needs both tracks".to_owned());
        }
        if let Some(feed) = self.store.as_mut() {
            self.stats.store = Some(feed.finish(unix_ms() as i64));
        }
        if let Some(writer) = self.writer.take() {
            match writer.finish() {
                Ok(duration) => {
                    tracing::info!(path = %self.path.display(), duration_ms = duration, "recording finalized");
                    self.stats.recorded_duration_ms = Some(duration);
                }
                Err(e) => self.recording_error(&e),
            }
        }
        self.stats
    }
}

/// Creates the recording at `path`, or, when that file exists (an earlier run of the emulator
/// in the same data directory), at the first free `<stem>-<n>.mkv`: recordings are never
/// overwritten. Returns the writer and the path it writes.
fn create_recording(path: &Path, params: &VideoParams) -> std::io::Result<(MkvWriter, PathBuf)> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut candidate = path.to_path_buf();
    for n in 2..=10_000u32 {
        match MkvWriter::create(&candidate, params) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                candidate = path.with_file_name(format!("{stem}-{n}.mkv"));
            }
            result => return result.map(|writer| (writer, candidate)),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{} and 9 999 numbered variants exist", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> VideoParams {
        crate::store::fragmenter::test_params()
    }

    /// The sample clip's first access unit (SPS, PPS, IDR) and its IDR alone.
    fn first_keyframe() -> (Vec<u8>, Vec<u8>) {
        let au = h264::access_units(kvs_media::sample::H264)[0].to_vec();
        let idr: Vec<u8> = h264::nal_units(&au)
            .into_iter()
            .filter(|u| h264::nal_type(u) == NAL_IDR)
            .flat_map(|u| [&[0, 0, 0, 1][..], u].concat())
            .collect();
        assert!(!idr.is_empty());
        (au, idr)
    }

    #[test]
    fn an_idr_whose_parameter_sets_were_lost_asks_for_a_keyframe_and_records_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = MediaSink::new(dir.path().join("s.mkv"), 1 << 20);
        let (keyframe, idr_alone) = first_keyframe();
        let now = Instant::now();
        // The stream's first packet (SPS and PPS) was lost: nothing shows the gap.
        assert!(
            sink.on_video(&idr_alone, 0, now, true),
            "a keyframe is asked for"
        );
        assert!(
            sink.stats().violations.is_empty(),
            "{:?}",
            sink.stats().violations
        );
        assert!(sink.stats().recording.is_none());
        assert!(!sink.on_video(&keyframe, 40_000, now, true));
        assert!(
            sink.stats().violations.is_empty(),
            "{:?}",
            sink.stats().violations
        );
        assert!(
            sink.stats().recording.is_some(),
            "recording starts at the full keyframe"
        );
    }

    #[test]
    fn a_device_that_never_sends_parameter_sets_breaks_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = MediaSink::new(dir.path().join("s.mkv"), 1 << 20);
        let (_, idr_alone) = first_keyframe();
        for i in 0..IDRS_WITHOUT_PARAMETER_SETS {
            assert!(sink.on_video(&idr_alone, u64::from(i) * 40_000, Instant::now(), true));
        }
        assert_eq!(
            sink.stats().violations,
            ["3 IDR frames in a row arrived without an SPS and a PPS before them"]
        );
        assert!(sink.stats().recording.is_none());
    }

    #[test]
    fn a_restart_never_overwrites_an_earlier_recording() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session-1-master.mkv");
        std::fs::write(&path, b"first run").unwrap();
        let (_, second) = create_recording(&path, &params()).unwrap();
        assert_eq!(second, dir.path().join("session-1-master-2.mkv"));
        let (_, third) = create_recording(&path, &params()).unwrap();
        assert_eq!(third, dir.path().join("session-1-master-3.mkv"));
        assert_eq!(std::fs::read(&path).unwrap(), b"first run");
    }
}
