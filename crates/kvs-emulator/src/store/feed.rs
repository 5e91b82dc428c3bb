//! Connects one storage session to its stream's store: Opus is transcoded to AAC
//! ([`OpusToAac`]), frames go through the session's [`Fragmenter`], and each finished fragment is numbered, written and indexed, after which
//! retention and the size cap are applied.

use std::sync::{Arc, Mutex};

use kvs_media::mkv::VideoParams;

use super::disk::{Retention, StreamStore};
use super::fragmenter::{Fragmenter, FragmenterLimits};
use super::transcode::{AacFrame, OpusToAac};

/// What a storage session added to its stream, as the inspection API reports it.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    /// The stream written to.
    pub stream: String,
    /// Fragments written.
    pub fragments: u64,
    /// Frames not stored (before the first keyframe, or past a fragment limit).
    pub frames_not_stored: u64,
    /// Frames not stored because the store's writer thread was too far behind (a disk much
    /// slower than the media).
    pub frames_dropped_writer_behind: u64,
    /// The audio codec stored: `aac` (transcoded from Opus, as the service does) or, when the
    /// transcoder could not start, `opus`.
    pub audio_codec: &'static str,
    /// Opus packets the transcoder could not decode.
    pub bad_audio_packets: u64,
    /// The last error writing a fragment, if any.
    pub error: Option<String>,
}

/// One session's feed into one stream's store.
#[derive(Debug)]
pub(crate) struct StoreFeed {
    fragmenter: Fragmenter,
    store: Arc<Mutex<StreamStore>>,
    retention: Retention,
    stats: StoreStats,
    /// Opus to AAC; `None` when it could not start (the Opus is then stored as it came).
    transcoder: Option<OpusToAac>,
    /// Scratch for the transcoder's output.
    aac_frames: Vec<AacFrame>,
}

impl StoreFeed {
    /// A feed into `store`, kept to `retention`.
    pub(crate) fn new(stream: &str, store: Arc<Mutex<StreamStore>>, retention: Retention) -> Self {
        let transcoder = OpusToAac::new()
            .inspect_err(|e| {
                if cfg!(feature = "aac") {
                    tracing::error!(stream, error = %e, "no Opus to AAC transcoder; the stream keeps Opus");
                } else {
                    // Built so on purpose (the quick start's demo): said once in its summary.
                    tracing::info!(stream, reason = %e, "the stream keeps Opus");
                }
            })
            .ok();
        Self {
            fragmenter: Fragmenter::new(FragmenterLimits::default()),
            store,
            retention,
            stats: StoreStats {
                stream: stream.to_owned(),
                audio_codec: if transcoder.is_some() { "aac" } else { "opus" },
                ..StoreStats::default()
            },
            transcoder,
            aac_frames: Vec::new(),
        }
    }

    /// What this session stored so far.
    pub(crate) fn stats(&self) -> StoreStats {
        let mut stats = self.stats.clone();
        stats.frames_not_stored = self.fragmenter.dropped();
        stats.bad_audio_packets = self.transcoder.as_ref().map_or(0, OpusToAac::bad_packets);
        stats
    }

    /// One video access unit (AVCC) at producer time `timestamp_ms`, arriving at `now_ms`.
    pub(crate) fn video(
        &mut self,
        now_ms: i64,
        timestamp_ms: i64,
        keyframe: bool,
        params: Option<&VideoParams>,
        data: Vec<u8>,
    ) {
        self.fragmenter
            .video(now_ms, timestamp_ms, keyframe, params, data);
        self.write_finished(now_ms);
        self.publish_live();
    }

    /// One Opus packet at producer time `timestamp_ms`, stored as the AAC it transcodes to.
    pub(crate) fn audio(&mut self, now_ms: i64, timestamp_ms: i64, data: &[u8]) {
        match self.transcoder.as_mut() {
            Some(transcoder) => {
                transcoder.push(timestamp_ms, data, &mut self.aac_frames);
                for frame in self.aac_frames.drain(..) {
                    self.fragmenter.audio(frame.timestamp_ms, frame.data);
                }
            }
            None => self.fragmenter.audio(timestamp_ms, data.to_vec()),
        }
        self.write_finished(now_ms);
        self.publish_live();
    }

    /// The session ended: store the open fragment.
    pub(crate) fn finish(&mut self, now_ms: i64) -> StoreStats {
        self.fragmenter.finish();
        self.write_finished(now_ms);
        self.stats()
    }

    /// Publish the frames of the fragments in assembly to the store's GetMedia readers (only
    /// with AAC: the live documents carry the AAC track the stored ones do).
    fn publish_live(&mut self) {
        let Some(transcoder) = self.transcoder.as_ref() else {
            return;
        };
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        for fragment in self.fragmenter.pending() {
            store.publish_live(fragment, transcoder.params());
        }
    }

    fn write_finished(&mut self, now_ms: i64) {
        while let Some(fragment) = self.fragmenter.poll_fragment() {
            let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            let result = store
                .append(&fragment, self.transcoder.as_ref().map(OpusToAac::params))
                .and_then(|meta| store.prune(now_ms, self.retention).map(|_| meta));
            match result {
                Ok(meta) => {
                    self.stats.fragments += 1;
                    tracing::debug!(
                        stream = %self.stats.stream,
                        fragment = %meta.fragment_number,
                        duration_ms = meta.fragment_length_ms,
                        bytes = meta.fragment_size_bytes,
                        "fragment stored"
                    );
                }
                Err(e) => {
                    tracing::error!(stream = %self.stats.stream, error = %e, "a fragment could not be stored");
                    self.stats.error = Some(format!("storing a fragment failed: {e}"));
                }
            }
        }
    }
}

#[cfg(all(test, feature = "aac"))]
mod tests {
    use super::*;
    use crate::store::fragmenter::test_params;

    /// A long session through the feed as the storage peer drives it (20 ms Opus packets,
    /// 25 fps video with a keyframe a second, both on one clock): what the live view keeps
    /// for GetMedia stays a few fragments, however long the session runs.
    #[test]
    fn the_live_view_keeps_a_bounded_number_of_fragments_over_a_long_session() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = StreamStore::open(dir.path()).unwrap();
        let store = Arc::new(Mutex::new(store));
        let retention = Retention {
            hours: 24,
            max_bytes: 1 << 20,
        };
        let mut feed = StoreFeed::new("live-view-bound", store.clone(), retention);
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
        let packet = encoder.encode_vec(&[0i16; 960], 4000).unwrap();
        let (mut most_fragments, mut most_bytes) = (0, 0);
        for step in 0..(120_000 / 20) {
            let t = 1_000_000 + step * 20;
            feed.audio(t, t, &packet);
            if step % 2 == 0 {
                let keyframe = step % 50 == 0;
                let params = keyframe.then(test_params);
                feed.video(t, t, keyframe, params.as_ref(), vec![0x11; 3000]);
            }
            let store = store.lock().unwrap();
            let live = store.live().fragments();
            most_fragments = most_fragments.max(live.len());
            let bytes: usize = live
                .iter()
                .flat_map(|f| &f.frames)
                .map(|f| f.data.len())
                .sum();
            most_bytes = most_bytes.max(bytes);
        }
        assert_eq!(feed.finish(1_120_000).fragments, 120, "a fragment a second");
        // The 4 stored fragments a reader may still be streaming, the closing one and the
        // open one.
        assert!(
            most_fragments <= 6,
            "{most_fragments} fragments in the live view"
        );
        // A fragment is 25 pictures of 3000 bytes and about 47 AAC frames.
        assert!(
            most_bytes < 6 * 90_000,
            "{most_bytes} bytes in the live view"
        );
    }
}
