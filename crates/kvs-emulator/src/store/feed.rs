//! Connects one storage session to its stream's store: frames go through the session's
//! [`Fragmenter`], and each finished fragment is numbered, written and indexed, after which
//! retention and the size cap are applied.

use std::sync::{Arc, Mutex};

use kvs_media::mkv::VideoParams;

use super::disk::{Retention, StreamStore};
use super::fragmenter::{Fragmenter, FragmenterLimits};

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
}

impl StoreFeed {
    /// A feed into `store`, kept to `retention`.
    pub(crate) fn new(stream: &str, store: Arc<Mutex<StreamStore>>, retention: Retention) -> Self {
        Self {
            fragmenter: Fragmenter::new(FragmenterLimits::default()),
            store,
            retention,
            stats: StoreStats {
                stream: stream.to_owned(),
                ..StoreStats::default()
            },
        }
    }

    /// What this session stored so far.
    pub(crate) fn stats(&self) -> StoreStats {
        let mut stats = self.stats.clone();
        stats.frames_not_stored = self.fragmenter.dropped();
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
    }

    /// One audio frame at producer time `timestamp_ms`.
    pub(crate) fn audio(&mut self, now_ms: i64, timestamp_ms: i64, data: Vec<u8>) {
        self.fragmenter.audio(timestamp_ms, data);
        self.write_finished(now_ms);
    }

    /// The session ended: store the open fragment.
    pub(crate) fn finish(&mut self, now_ms: i64) -> StoreStats {
        self.fragmenter.finish();
        self.write_finished(now_ms);
        self.stats()
    }

    fn write_finished(&mut self, now_ms: i64) {
        while let Some(fragment) = self.fragmenter.poll_fragment() {
            let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            let result = store
                .append(&fragment)
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
