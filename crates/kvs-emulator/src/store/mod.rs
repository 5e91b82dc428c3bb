//! The stream store: what each Kinesis video stream keeps of the media its storage sessions
//! received, cut into fragments at keyframes the way the service cuts them
//! ([`fragmenter`]), kept on disk in the data directory with an index that a restart reloads
//! ([`disk`]), and trimmed to `DataRetentionInHours` and a size cap.
//!
//! One store per stream (not per session): every storage session of a channel whose media
//! storage configuration points at a stream appends to that stream's store. Stores live under
//! [`EmulatorConfig::streams_dir`](crate::EmulatorConfig::streams_dir), one directory per stream
//! name, and are opened on first use, so fragments written before a restart are found by name.
//!
//! Audio is kept as the service keeps it: the Opus a device sends is transcoded to AAC-LC
//! ([`transcode`], which says which libraries and why), so a fragment holds H.264 (track 1,
//! `V_MPEG4/ISO/AVC`, avcC codec private data) and AAC (track 2, `A_AAC`, AudioSpecificConfig).
//!
//! Read back as fragmented MP4 ([`clip`] reads the fragment files, [`fmp4`] writes the init
//! and media segments) for GetClip, and for HLS and DASH playback ([`crate::playback`]).

pub(crate) mod clip;
pub(crate) mod disk;
pub(crate) mod feed;
pub(crate) mod fmp4;
pub(crate) mod fragmenter;
pub(crate) mod live;
pub(crate) mod tagged;
#[cfg(feature = "aac")]
pub(crate) mod transcode;
#[cfg(not(feature = "aac"))]
#[path = "transcode_off.rs"]
pub(crate) mod transcode;
pub(crate) mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use disk::FragmentMeta;
use disk::{Retention, StreamStore};
use feed::StoreFeed;

use crate::registry::{Registry, ResourceRef};

/// Every stream's store, opened on first use.
#[derive(Debug)]
pub(crate) struct StreamStores {
    dir: PathBuf,
    /// Bytes each stream may keep before its oldest fragments go.
    max_bytes_per_stream: u64,
    open: Mutex<HashMap<String, Arc<Mutex<StreamStore>>>>,
    /// Open GetMedia responses per stream (the service allows a few at once).
    readers: Mutex<HashMap<String, usize>>,
}

impl StreamStores {
    /// Stores under `dir`.
    pub(crate) fn new(dir: PathBuf, max_bytes_per_stream: u64) -> Self {
        Self {
            dir,
            max_bytes_per_stream,
            open: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
        }
    }

    /// The store of `stream` (a stream name), opened (and recovered) on first use.
    pub(crate) fn stream(&self, stream: &str) -> std::io::Result<Arc<Mutex<StreamStore>>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = open.get(stream) {
            return Ok(store.clone());
        }
        let dir = self.dir.join(crate::storage::safe_dir_name(stream));
        let (store, recovery) = StreamStore::open(&dir)?;
        tracing::info!(
            stream,
            kept = recovery.kept,
            dropped = recovery.dropped,
            "stream store opened"
        );
        let store = Arc::new(Mutex::new(store));
        open.insert(stream.to_owned(), store.clone());
        Ok(store)
    }

    /// A feed for a storage session of `channel_arn` into the stream its media storage
    /// configuration names; `None` (logged) when there is none, the stream keeps no data
    /// (`DataRetentionInHours` 0) or its store cannot be opened.
    pub(crate) fn feed_for_channel(
        &self,
        registry: &Registry,
        channel_arn: &str,
    ) -> Option<StoreFeed> {
        let channel = registry.channel(ResourceRef::Arn(channel_arn)).ok()?;
        let stream_arn = channel.storage_stream()?;
        let Ok(stream) = registry.stream(ResourceRef::Arn(stream_arn)) else {
            tracing::warn!(
                channel = channel_arn,
                stream = stream_arn,
                "the channel's stream does not exist; media is not stored"
            );
            return None;
        };
        if stream.data_retention_in_hours == 0 {
            tracing::warn!(stream = %stream.name, "the stream keeps no data (DataRetentionInHours 0); media is not stored");
            return None;
        }
        match self.stream(&stream.name) {
            Ok(store) => Some(StoreFeed::new(
                &stream.name,
                store,
                Retention {
                    hours: stream.data_retention_in_hours,
                    max_bytes: self.max_bytes_per_stream,
                },
            )),
            Err(e) => {
                tracing::error!(stream = %stream.name, error = %e, "the stream's store cannot be opened; media is not stored");
                None
            }
        }
    }

    /// Count one more reader of `stream` unless it already has `max`; whether it was counted.
    pub(crate) fn add_reader(&self, stream: &str, max: usize) -> bool {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let count = readers.entry(stream.to_owned()).or_default();
        if *count >= max {
            return false;
        }
        *count += 1;
        true
    }

    /// A reader [`add_reader`](Self::add_reader) counted is gone.
    pub(crate) fn remove_reader(&self, stream: &str) {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = readers.get_mut(stream) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                readers.remove(stream);
            }
        }
    }

    /// Wake the GetMedia readers of `stream` (it was deleted: they end).
    pub(crate) fn wake_readers(&self, stream: &str) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = open.get(stream) {
            store.lock().unwrap_or_else(|e| e.into_inner()).wake();
        }
    }

    /// Whether `stream` has a store on disk (it had media once).
    pub(crate) fn has_data(&self, stream: &str) -> bool {
        self.dir
            .join(crate::storage::safe_dir_name(stream))
            .is_dir()
    }

    /// The fragments `stream` keeps, oldest first, each with its file (empty for a stream that
    /// never had media).
    pub(crate) fn fragments(&self, stream: &str) -> std::io::Result<Vec<StoredFragment>> {
        let store = self.stream(stream)?;
        let store = store.lock().unwrap_or_else(|e| e.into_inner());
        Ok(store
            .fragments()
            .iter()
            .map(|meta| StoredFragment {
                file: store.path_of(&meta.fragment_number).unwrap_or_default(),
                meta: meta.clone(),
            })
            .collect())
    }
}

/// A fragment and where its Matroska file is.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredFragment {
    /// What the index keeps.
    #[serde(flatten)]
    pub meta: FragmentMeta,
    /// The fragment's Matroska file.
    pub file: PathBuf,
}
