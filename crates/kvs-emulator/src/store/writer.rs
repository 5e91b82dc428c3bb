//! A storage session's [`StoreFeed`] on a thread of its own: the storage peer hands each frame
//! over and goes back to its socket, while Opus is transcoded and fragments are written and
//! synced here. Inline, that work (milliseconds per fragment, more in a debug build) held the
//! peer off its socket while a device sent a burst (a push source faster than real time, a
//! sender catching up): the kernel dropped the datagrams that did not fit its receive buffer,
//! the last frames and the device's DTLS close among them.
//!
//! What waits for the thread is bounded in bytes ([`MAX_QUEUED_BYTES`]): past it (a disk far
//! slower than the media) frames are not stored, counted in
//! [`StoreStats::frames_dropped_writer_behind`] and logged once, rather than growing without
//! bound or holding up the peer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kvs_media::mkv::VideoParams;

use super::feed::{StoreFeed, StoreStats};

/// Media bytes that may wait for the writer thread: about a minute of 8 Mbit/s video.
pub(crate) const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// One frame for the feed.
enum Frame {
    Video {
        now_ms: i64,
        timestamp_ms: i64,
        keyframe: bool,
        params: Option<VideoParams>,
        data: Vec<u8>,
    },
    Audio {
        now_ms: i64,
        timestamp_ms: i64,
        data: Vec<u8>,
    },
}

impl Frame {
    fn len(&self) -> usize {
        match self {
            Frame::Video { data, .. } | Frame::Audio { data, .. } => data.len(),
        }
    }
}

/// The storage peer's side of one session's writer thread; see the module docs.
#[derive(Debug)]
pub(crate) struct StoreWriter {
    /// `None` once finished (or when the thread could not start).
    frames: Option<mpsc::Sender<Frame>>,
    thread: Option<JoinHandle<StoreFeed>>,
    /// The feed's statistics as of its last keyframe, written by the thread.
    published: Arc<Mutex<StoreStats>>,
    queued_bytes: Arc<AtomicUsize>,
    dropped_behind: u64,
    /// Why nothing is stored, when the thread could not start.
    start_error: Option<String>,
}

impl StoreWriter {
    /// Starts the writer thread for `feed`. When the thread cannot start, nothing is stored
    /// and the statistics say why.
    pub(crate) fn spawn(feed: StoreFeed) -> Self {
        let stats = feed.stats();
        let published = Arc::new(Mutex::new(stats.clone()));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("kvs-store-{}", stats.stream))
            .spawn({
                let published = published.clone();
                let queued_bytes = queued_bytes.clone();
                move || write_frames(feed, &rx, &published, &queued_bytes)
            });
        match spawned {
            Ok(thread) => Self {
                frames: Some(tx),
                thread: Some(thread),
                published,
                queued_bytes,
                dropped_behind: 0,
                start_error: None,
            },
            Err(e) => {
                tracing::error!(stream = %stats.stream, error = %e, "the store's writer thread cannot start; media is not stored");
                Self {
                    frames: None,
                    thread: None,
                    published,
                    queued_bytes,
                    dropped_behind: 0,
                    start_error: Some(format!("the store's writer thread cannot start: {e}")),
                }
            }
        }
    }

    /// One video access unit (AVCC); see [`StoreFeed::video`].
    pub(crate) fn video(
        &mut self,
        now_ms: i64,
        timestamp_ms: i64,
        keyframe: bool,
        params: Option<VideoParams>,
        data: Vec<u8>,
    ) {
        self.send(Frame::Video {
            now_ms,
            timestamp_ms,
            keyframe,
            params,
            data,
        });
    }

    /// One Opus packet; see [`StoreFeed::audio`].
    pub(crate) fn audio(&mut self, now_ms: i64, timestamp_ms: i64, data: &[u8]) {
        self.send(Frame::Audio {
            now_ms,
            timestamp_ms,
            data: data.to_vec(),
        });
    }

    fn send(&mut self, frame: Frame) {
        let Some(frames) = &self.frames else {
            self.dropped_behind += 1;
            return;
        };
        let len = frame.len();
        if self.queued_bytes.load(Ordering::Acquire) + len > MAX_QUEUED_BYTES {
            if self.dropped_behind == 0 {
                tracing::warn!(
                    stream = %self.published().stream,
                    queued_bytes = MAX_QUEUED_BYTES,
                    "the store's writer is behind (a slow disk?); frames are not stored until it catches up"
                );
            }
            self.dropped_behind += 1;
            return;
        }
        self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if frames.send(frame).is_err() {
            // The thread ended early (it panicked): nothing more is stored.
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.dropped_behind += 1;
        }
    }

    fn published(&self) -> StoreStats {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What this session stored, as of the last keyframe the thread wrote.
    pub(crate) fn stats(&self) -> StoreStats {
        let mut stats = self.published();
        stats.frames_dropped_writer_behind = self.dropped_behind;
        if stats.error.is_none() {
            stats.error.clone_from(&self.start_error);
        }
        stats
    }

    /// The session ended: waits until the thread has written every frame handed over, stores
    /// the open fragment and returns the final statistics. Blocks (call it off the runtime).
    pub(crate) fn finish(&mut self, now_ms: i64) -> StoreStats {
        self.frames = None;
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(mut feed) => {
                    let stats = feed.finish(now_ms);
                    *self.published.lock().unwrap_or_else(|e| e.into_inner()) = stats;
                }
                Err(_) => {
                    let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
                    published.error = Some("the store's writer thread panicked".to_owned());
                }
            }
        }
        self.stats()
    }
}

/// The thread: every frame into the feed, the statistics published at each keyframe.
fn write_frames(
    mut feed: StoreFeed,
    frames: &mpsc::Receiver<Frame>,
    published: &Mutex<StoreStats>,
    queued_bytes: &AtomicUsize,
) -> StoreFeed {
    while let Ok(frame) = frames.recv() {
        let len = frame.len();
        let keyframe = match frame {
            Frame::Video {
                now_ms,
                timestamp_ms,
                keyframe,
                params,
                data,
            } => {
                feed.video(now_ms, timestamp_ms, keyframe, params.as_ref(), data);
                keyframe
            }
            Frame::Audio {
                now_ms,
                timestamp_ms,
                data,
            } => {
                feed.audio(now_ms, timestamp_ms, &data);
                false
            }
        };
        queued_bytes.fetch_sub(len, Ordering::AcqRel);
        if keyframe {
            *published.lock().unwrap_or_else(|e| e.into_inner()) = feed.stats();
        }
    }
    feed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::{Retention, StreamStore};

    fn writer(dir: &std::path::Path) -> (StoreWriter, Arc<Mutex<StreamStore>>) {
        let (store, _) = StreamStore::open(dir).unwrap();
        let store = Arc::new(Mutex::new(store));
        let feed = StoreFeed::new(
            "writer-test-stream",
            store.clone(),
            Retention {
                hours: 24,
                max_bytes: u64::MAX,
            },
        );
        (StoreWriter::spawn(feed), store)
    }

    fn params() -> VideoParams {
        let sample = kvs_media::sample::H264;
        let units = kvs_media::h264::nal_units(sample);
        let sps = units.iter().find(|u| u[0] & 0x1f == 7).unwrap().to_vec();
        let pps = units.iter().find(|u| u[0] & 0x1f == 8).unwrap().to_vec();
        VideoParams {
            width: 320,
            height: 240,
            sps,
            pps,
        }
    }

    /// Every frame handed over is written by `finish`, in order, with fragments cut at each
    /// keyframe after the first; nothing is dropped under the byte bound.
    #[test]
    fn finish_writes_every_frame_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, store) = writer(dir.path());
        for i in 0..75i64 {
            let keyframe = i % 25 == 0;
            writer.video(
                1_000 + i * 40,
                1_000 + i * 40,
                keyframe,
                keyframe.then(params),
                vec![0, 0, 0, 2, if keyframe { 0x65 } else { 0x41 }, 0x88],
            );
        }
        let stats = writer.finish(10_000);
        assert_eq!(stats.frames_dropped_writer_behind, 0, "{stats:?}");
        assert_eq!(stats.error, None);
        assert_eq!(stats.fragments, 3, "{stats:?}");
        assert_eq!(store.lock().unwrap().fragments().len(), 3);
    }

    /// Past the byte bound frames are counted as dropped, not queued.
    #[test]
    fn frames_past_the_byte_bound_are_counted_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _store) = writer(dir.path());
        // As if the thread were that far behind.
        writer
            .queued_bytes
            .fetch_add(MAX_QUEUED_BYTES, Ordering::AcqRel);
        writer.audio(0, 0, &[0xF8, 0xFF, 0xFE]);
        writer.audio(20, 20, &[0xF8, 0xFF, 0xFE]);
        assert_eq!(writer.stats().frames_dropped_writer_behind, 2);
        writer
            .queued_bytes
            .fetch_sub(MAX_QUEUED_BYTES, Ordering::AcqRel);
        let stats = writer.finish(100);
        assert_eq!(stats.frames_dropped_writer_behind, 2);
    }
}
