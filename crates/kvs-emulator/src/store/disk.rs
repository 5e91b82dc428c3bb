//! One stream's fragments on disk, and the index over them.
//!
//! Layout, under the stream's directory (`<streams dir>/<stream name>/`):
//! - `fragments/<fragment number>.mkv`: one self-contained Matroska file per fragment (EBML
//!   header, Tracks with the codec private data, one cluster per keyframe), its timestamps
//!   relative to the fragment's start, so `ffprobe` reads any fragment alone;
//! - `index.jsonl`: one JSON line per fragment ([`FragmentMeta`]), appended once its file is
//!   complete, and a `{"removedThrough":"<number>"}` line each time retention or the size cap
//!   removes the oldest fragments. Removal appends rather than rewrites: at its cap a store
//!   removes a fragment for each one it adds, and rewriting thousands of lines each time would
//!   make every fragment cost the whole index. The file is compacted (rewritten with only the
//!   live fragments) once it holds more than twice their lines.
//!
//! Crash safety: a fragment is written as `<number>.mkv.part`, synced, renamed, and only then
//! its index line is appended and synced. On open, `.part` files (a `kill -9` mid-fragment),
//! files without an index line (killed between rename and append), a torn last line and lines
//! whose file is gone or has another size are dropped, and the index is rewritten from what
//! survived: nothing half-written is ever served. Removal appends its line (synced) before
//! it deletes the files, so a crash in between leaves files that open removes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use kvs_media::mkv::{AacParams, MkvWriter};

use super::fragmenter::Fragment;

/// Fragment numbers are decimal strings that grow, as the service's do; ours count up from this
/// (the service's are 47-digit numbers; 38 digits keep ours in a `u128`).
pub(crate) const FIRST_FRAGMENT_NUMBER: u128 = 91_343_852_333_181_432_392_682_062_607_743_920_146;

const INDEX: &str = "index.jsonl";
/// Lines of dead weight (removed fragments, removal lines) an index file may carry beyond
/// its live fragments before it is compacted: at most this many plus as many as it keeps.
const INDEX_SLACK_LINES: usize = 64;
const FRAGMENTS: &str = "fragments";

/// What the index keeps about one fragment (the fields `ListFragments` returns).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FragmentMeta {
    /// The fragment number, a decimal string that grows.
    pub fragment_number: String,
    /// Producer timestamp of its first frame, ms since the epoch.
    pub producer_timestamp_ms: i64,
    /// Server timestamp: when its first frame arrived, ms since the epoch.
    pub server_timestamp_ms: i64,
    /// Its duration in ms.
    pub fragment_length_ms: i64,
    /// The size of its Matroska file in bytes.
    pub fragment_size_bytes: u64,
}

impl FragmentMeta {
    fn number(&self) -> Option<u128> {
        self.fragment_number.parse().ok()
    }
}

/// An index line saying that every fragment up to this number (included) is removed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RemovedThrough {
    removed_through: String,
}

/// When fragments are removed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// The stream's `DataRetentionInHours`.
    pub hours: u32,
    /// The most bytes the stream may keep; the oldest fragments go first.
    pub max_bytes: u64,
}

/// One stream's fragments on disk.
#[derive(Debug)]
pub(crate) struct StreamStore {
    dir: PathBuf,
    /// Oldest first; numbers grow.
    index: Vec<FragmentMeta>,
    /// Lines in the index file (live fragments, removed ones, removal lines).
    index_lines: usize,
    next_number: u128,
    bytes: u64,
    /// Counts appended fragments; GetMedia readers wait on it to follow live ingestion.
    appended: tokio::sync::watch::Sender<u64>,
    /// The fragments being assembled, as GetMedia streams them.
    live: super::live::LiveView,
}

/// What opening a store found and dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Fragments kept.
    pub kept: usize,
    /// Half-written or unindexed files removed, and index lines dropped.
    pub dropped: usize,
}

impl StreamStore {
    /// Open (or create) the store in `dir`, dropping whatever a crash left half-written.
    pub(crate) fn open(dir: &Path) -> io::Result<(Self, Recovery)> {
        let fragments = dir.join(FRAGMENTS);
        fs::create_dir_all(&fragments)?;
        let mut recovery = Recovery::default();
        let mut index: Vec<FragmentMeta> = Vec::new();
        let mut rewrite = false;
        let mut lines = 0;
        let mut removed_through = None;
        if let Ok(file) = File::open(dir.join(INDEX)) {
            for line in BufReader::new(file).split(b'\n') {
                let line = line?;
                lines += 1;
                if let Ok(removed) = serde_json::from_slice::<RemovedThrough>(&line) {
                    match removed.removed_through.parse::<u128>() {
                        Ok(through) => removed_through = removed_through.max(Some(through)),
                        Err(_) => {
                            recovery.dropped += 1;
                            rewrite = true;
                        }
                    }
                    continue;
                }
                let meta = serde_json::from_slice::<FragmentMeta>(&line)
                    .ok()
                    .filter(|m| m.number() > index.last().and_then(FragmentMeta::number));
                match meta {
                    Some(meta) => index.push(meta),
                    None => {
                        recovery.dropped += 1;
                        rewrite = true;
                    }
                }
            }
        }
        // Fragments up to the last removal line are gone (numbers grow, so one pass does);
        // each of the others needs its file, whole.
        index.retain(|m| m.number() > removed_through);
        let listed = index.len();
        index.retain(|m| {
            let size = fs::metadata(fragment_path(dir, &m.fragment_number)).map(|md| md.len());
            size.ok() == Some(m.fragment_size_bytes)
        });
        if index.len() < listed {
            recovery.dropped += listed - index.len();
            rewrite = true;
        }
        let vouched: std::collections::HashSet<&str> =
            index.iter().map(|m| m.fragment_number.as_str()).collect();
        for entry in fs::read_dir(&fragments)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let indexed = name
                .strip_suffix(".mkv")
                .is_some_and(|n| vouched.contains(n));
            if !indexed {
                tracing::warn!(file = %path.display(), "removing a fragment file no index line vouches for");
                fs::remove_file(&path)?;
                recovery.dropped += 1;
            }
        }
        recovery.kept = index.len();
        // Numbers go on growing after the newest fragment, or the newest removed one.
        let next_number = index
            .last()
            .and_then(FragmentMeta::number)
            .max(removed_through)
            .map_or(FIRST_FRAGMENT_NUMBER, |n| n + 1);
        let bytes = index.iter().map(|m| m.fragment_size_bytes).sum();
        let mut store = Self {
            dir: dir.to_path_buf(),
            index,
            index_lines: lines,
            next_number,
            bytes,
            appended: tokio::sync::watch::Sender::new(0),
            live: super::live::LiveView::default(),
        };
        if rewrite || store.index_needs_compaction() {
            store.rewrite_index()?;
        }
        Ok((store, recovery))
    }

    /// Changes each time a fragment is appended (for readers that follow the stream).
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// The fragments being assembled (and the last few stored), for GetMedia.
    pub(crate) fn live(&self) -> &super::live::LiveView {
        &self.live
    }

    /// `fragment`, open or closing, has the frames it has: publish the new ones to readers.
    pub(crate) fn publish_live(&mut self, fragment: &Fragment, aac: &AacParams) {
        if self.live.publish(fragment, aac) {
            self.appended.send_modify(|_| {});
        }
    }

    /// Wake the subscribers without a new fragment (they check why).
    pub(crate) fn wake(&self) {
        self.appended.send_modify(|_| {});
    }

    /// Every fragment, oldest first.
    pub(crate) fn fragments(&self) -> &[FragmentMeta] {
        &self.index
    }

    /// Bytes of all fragment files.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The Matroska file of a fragment in the index.
    pub(crate) fn path_of(&self, fragment_number: &str) -> Option<PathBuf> {
        let wanted = fragment_number.parse::<u128>().ok()?;
        // The index is in growing number order (open drops lines out of it).
        self.index
            .binary_search_by_key(&Some(wanted), FragmentMeta::number)
            .ok()
            .map(|_| fragment_path(&self.dir, fragment_number))
    }

    /// Number, write and index one fragment, its audio AAC with `aac` (Opus without); returns
    /// its metadata.
    pub(crate) fn append(
        &mut self,
        fragment: &Fragment,
        aac: Option<&AacParams>,
    ) -> io::Result<FragmentMeta> {
        let number = self.next_number.to_string();
        let path = fragment_path(&self.dir, &number);
        let part = path.with_extension("mkv.part");
        // A `.part` left by an earlier attempt at this number is garbage.
        let _ = fs::remove_file(&part);
        let written = write_fragment(&part, fragment, aac).and_then(|()| fs::rename(&part, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&part);
            return Err(e);
        }
        self.next_number += 1;
        let meta = FragmentMeta {
            fragment_number: number,
            producer_timestamp_ms: fragment.producer_start_ms,
            server_timestamp_ms: fragment.server_start_ms,
            fragment_length_ms: fragment.duration_ms,
            fragment_size_bytes: fs::metadata(&path)?.len(),
        };
        self.append_index_line(&meta)?;
        self.bytes += meta.fragment_size_bytes;
        self.index.push(meta.clone());
        self.live.stored(fragment, &meta);
        self.appended.send_modify(|n| *n += 1);
        Ok(meta)
    }

    /// Remove fragments older than the retention period (by server timestamp) and, oldest
    /// first, as many as the size cap needs. Returns how many went.
    pub(crate) fn prune(&mut self, now_ms: i64, retention: Retention) -> io::Result<usize> {
        let horizon = now_ms - i64::from(retention.hours) * 3_600_000;
        let mut bytes = self.bytes;
        let expired = self
            .index
            .iter()
            .take_while(|m| {
                let go = m.server_timestamp_ms + m.fragment_length_ms < horizon
                    || bytes > retention.max_bytes;
                if go {
                    bytes -= m.fragment_size_bytes;
                }
                go
            })
            .count();
        if expired == 0 {
            return Ok(0);
        }
        let gone: Vec<FragmentMeta> = self.index.drain(..expired).collect();
        self.bytes = bytes;
        // The index first: a crash in between leaves unindexed files, which open removes.
        if self.index_needs_compaction() {
            self.rewrite_index()?;
        } else {
            let through = gone.last().map(|m| m.fragment_number.clone());
            self.append_index_line(&RemovedThrough {
                removed_through: through.unwrap_or_default(),
            })?;
        }
        for meta in &gone {
            fs::remove_file(fragment_path(&self.dir, &meta.fragment_number))?;
        }
        tracing::info!(dir = %self.dir.display(), removed = expired, "fragments past retention or the size cap removed");
        Ok(expired)
    }

    /// Append `line` to the index file and sync it.
    fn append_index_line(&mut self, line: &impl serde::Serialize) -> io::Result<()> {
        let bytes = json_line(line)?;
        let mut index = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(INDEX))?;
        index.write_all(&bytes)?;
        index.sync_data()?;
        self.index_lines += 1;
        Ok(())
    }

    /// Whether the index file carries more dead lines than [`INDEX_SLACK_LINES`] beyond as
    /// many as it keeps.
    fn index_needs_compaction(&self) -> bool {
        self.index_lines > 2 * self.index.len() + INDEX_SLACK_LINES
    }

    /// Write the index anew (to a temporary file, then renamed over it).
    fn rewrite_index(&mut self) -> io::Result<()> {
        let tmp = self.dir.join("index.jsonl.tmp");
        let mut file = File::create(&tmp)?;
        let mut lines = self.index.len();
        if self.index.is_empty() && self.next_number > FIRST_FRAGMENT_NUMBER {
            // Every fragment is gone: this line keeps the numbers growing after a restart.
            let removed = RemovedThrough {
                removed_through: (self.next_number - 1).to_string(),
            };
            file.write_all(&json_line(&removed)?)?;
            lines += 1;
        }
        for meta in &self.index {
            file.write_all(&json_line(meta)?)?;
        }
        file.sync_all()?;
        fs::rename(&tmp, self.dir.join(INDEX))?;
        self.index_lines = lines;
        Ok(())
    }
}

/// `value` as one line of the index: its JSON and a newline.
fn json_line(value: &impl serde::Serialize) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

fn fragment_path(dir: &Path, number: &str) -> PathBuf {
    dir.join(FRAGMENTS).join(format!("{number}.mkv"))
}

/// One fragment as a Matroska file, timestamps relative to its start.
fn write_fragment(path: &Path, fragment: &Fragment, aac: Option<&AacParams>) -> io::Result<()> {
    let mut writer = match aac {
        Some(aac) => MkvWriter::create_with_aac(path, &fragment.video, aac)?,
        None => MkvWriter::create(path, &fragment.video)?,
    };
    let start = fragment.producer_start_ms;
    let end = fragment.duration_ms;
    for frame in &fragment.frames {
        let ts = frame.timestamp_ms - start;
        writer.write_frame(frame.track, ts, end.max(ts), frame.keyframe, &frame.data)?;
    }
    writer.finish().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fragmenter::StoredFrame;
    use kvs_media::mkv::{AUDIO_TRACK, VIDEO_TRACK};

    fn fragment(start_ms: i64) -> Fragment {
        let mut frames = Vec::new();
        for i in 0..25 {
            frames.push(StoredFrame {
                track: VIDEO_TRACK,
                timestamp_ms: start_ms + i * 40,
                keyframe: i == 0,
                data: vec![0, 0, 0, 2, 0x65, 0x88],
            });
            frames.push(StoredFrame {
                track: AUDIO_TRACK,
                timestamp_ms: start_ms + i * 40 + 10,
                keyframe: true,
                data: vec![0xfc, 0xff, 0xfe],
            });
        }
        Fragment {
            producer_start_ms: start_ms,
            server_start_ms: start_ms + 100,
            duration_ms: 1000,
            video: crate::store::fragmenter::test_params(),
            bytes: 0,
            frames,
        }
    }

    const KEEP_ALL: Retention = Retention {
        hours: 24,
        max_bytes: u64::MAX,
    };

    #[test]
    fn fragments_are_numbered_upwards_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = StreamStore::open(dir.path()).unwrap();
        let a = store.append(&fragment(1_000_000), None).unwrap();
        let b = store.append(&fragment(1_001_000), None).unwrap();
        assert!(
            a.fragment_number.parse::<u128>().unwrap() < b.fragment_number.parse::<u128>().unwrap()
        );
        assert_eq!(a.producer_timestamp_ms, 1_000_000);
        assert_eq!(a.server_timestamp_ms, 1_000_100);
        assert_eq!(a.fragment_length_ms, 1000);
        let path = store.path_of(&a.fragment_number).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), a.fragment_size_bytes);
        drop(store);

        let (mut reopened, recovery) = StreamStore::open(dir.path()).unwrap();
        assert_eq!(
            recovery,
            Recovery {
                kept: 2,
                dropped: 0
            }
        );
        assert_eq!(reopened.fragments(), &[a, b.clone()]);
        let c = reopened.append(&fragment(1_002_000), None).unwrap();
        assert_eq!(
            c.fragment_number.parse::<u128>().unwrap(),
            b.fragment_number.parse::<u128>().unwrap() + 1
        );
    }

    #[test]
    fn what_a_crash_left_half_written_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = StreamStore::open(dir.path()).unwrap();
        let kept = store.append(&fragment(0), None).unwrap();
        let torn = store.append(&fragment(1000), None).unwrap();
        drop(store);
        let fragments = dir.path().join(FRAGMENTS);
        // Killed mid-write of a third fragment, after the rename of a fourth but before its line,
        // and mid-append of the second's line.
        fs::write(fragments.join("99.mkv.part"), b"\x1a\x45\xdf\xa3 half").unwrap();
        fs::write(fragments.join("98.mkv"), b"complete but unindexed").unwrap();
        let index = fs::read_to_string(dir.path().join(INDEX)).unwrap();
        let cut = index.len() - 10;
        fs::write(dir.path().join(INDEX), &index[..cut]).unwrap();

        let (store, recovery) = StreamStore::open(dir.path()).unwrap();
        assert_eq!(store.fragments(), std::slice::from_ref(&kept));
        assert_eq!(
            recovery,
            Recovery {
                kept: 1,
                dropped: 4
            }
        );
        assert!(store.path_of(&torn.fragment_number).is_none());
        let mut left: Vec<_> = fs::read_dir(&fragments)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec![format!("{}.mkv", kept.fragment_number)]);
        let (_, again) = StreamStore::open(dir.path()).unwrap();
        assert_eq!(
            again,
            Recovery {
                kept: 1,
                dropped: 0
            },
            "the index was rewritten clean"
        );
    }

    #[test]
    fn retention_and_the_size_cap_remove_the_oldest_fragments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = StreamStore::open(dir.path()).unwrap();
        let hour = 3_600_000;
        let metas: Vec<_> = (0..4)
            .map(|i| store.append(&fragment(i * hour), None).unwrap())
            .collect();
        let one_hour = Retention {
            hours: 1,
            max_bytes: u64::MAX,
        };
        // At 3 h 0.5 s, fragments ending before 2 h 0.5 s are past a one-hour retention.
        assert_eq!(store.prune(3 * hour + 500, one_hour).unwrap(), 2);
        assert_eq!(store.fragments(), &metas[2..]);
        let cap = Retention {
            hours: 24,
            max_bytes: metas[3].fragment_size_bytes,
        };
        assert_eq!(store.prune(3 * hour, cap).unwrap(), 1);
        assert_eq!(store.fragments(), &metas[3..]);
        assert_eq!(store.bytes(), metas[3].fragment_size_bytes);
        assert_eq!(store.prune(3 * hour, KEEP_ALL).unwrap(), 0);
        let (reopened, recovery) = StreamStore::open(dir.path()).unwrap();
        assert_eq!(reopened.fragments(), &metas[3..]);
        assert_eq!(recovery.dropped, 0);
        assert_eq!(fs::read_dir(dir.path().join(FRAGMENTS)).unwrap().count(), 1);
    }

    fn index_lines(dir: &Path) -> Vec<String> {
        fs::read_to_string(dir.join(INDEX))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn at_the_cap_a_removal_appends_a_line_and_the_index_is_compacted_before_it_doubles() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = StreamStore::open(dir.path()).unwrap();
        let size = store
            .append(&fragment(0), None)
            .unwrap()
            .fragment_size_bytes;
        // Room for about ten fragments (their sizes differ by a few bytes at most).
        let cap = Retention {
            hours: 24,
            max_bytes: 10 * size + size / 2,
        };
        let (mut appended_lines, mut compactions) = (0, 0);
        for i in 1..400 {
            store.append(&fragment(i * 1000), None).unwrap();
            let before = index_lines(dir.path()).len();
            let removed = store.prune(i * 1000, cap).unwrap();
            let after = index_lines(dir.path());
            let kept = store.fragments().len();
            assert!(kept <= 11, "{kept} kept");
            assert!(
                removed == 0 || kept >= 9,
                "{kept} kept after removing {removed}"
            );
            assert!(
                after.len() <= 2 * kept + INDEX_SLACK_LINES + 1,
                "{}",
                after.len()
            );
            if removed > 0 && after.len() == before + 1 {
                appended_lines += 1;
                let last: serde_json::Value = serde_json::from_str(after.last().unwrap()).unwrap();
                assert_eq!(
                    last["removedThrough"].as_str(),
                    Some(
                        store.fragments()[0]
                            .number()
                            .map(|n| (n - 1).to_string())
                            .unwrap()
                            .as_str()
                    )
                );
            } else if removed > 0 {
                compactions += 1;
                assert_eq!(after.len(), kept, "compacted to the live fragments");
            }
        }
        // Before, each removal rewrote the whole index.
        assert!(
            appended_lines > 300,
            "{appended_lines} removals appended a line"
        );
        // Each round adds two lines (a fragment, a removal): one compaction per ~37 rounds.
        assert!((8..=12).contains(&compactions), "{compactions} compactions");
        let (reopened, recovery) = StreamStore::open(dir.path()).unwrap();
        assert_eq!(reopened.fragments(), store.fragments());
        assert_eq!(recovery.dropped, 0);
        let files = fs::read_dir(dir.path().join(FRAGMENTS)).unwrap().count();
        assert_eq!(files, store.fragments().len());
        let middle = &store.fragments()[4].fragment_number;
        assert!(reopened.path_of(middle).is_some());
        assert!(reopened.path_of("12").is_none());
        assert!(reopened.path_of("not a number").is_none());
    }

    #[test]
    fn numbers_keep_growing_after_every_fragment_is_removed_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = StreamStore::open(dir.path()).unwrap();
        let hour = 3_600_000;
        let last = (0..3)
            .map(|i| store.append(&fragment(i * 1000), None).unwrap())
            .last()
            .unwrap();
        let one_hour = Retention {
            hours: 1,
            max_bytes: u64::MAX,
        };
        assert_eq!(store.prune(2 * hour, one_hour).unwrap(), 3);
        drop(store);
        let (mut reopened, recovery) = StreamStore::open(dir.path()).unwrap();
        assert_eq!(recovery, Recovery::default());
        let next = reopened.append(&fragment(2 * hour), None).unwrap();
        assert_eq!(next.number(), last.number().map(|n| n + 1));
        // Compacted with nothing left, the index still remembers where numbers stood.
        reopened.prune(4 * hour, one_hour).unwrap();
        reopened.rewrite_index().unwrap();
        drop(reopened);
        let (mut again, _) = StreamStore::open(dir.path()).unwrap();
        let after = again.append(&fragment(4 * hour), None).unwrap();
        assert_eq!(after.number(), next.number().map(|n| n + 1));
    }
}
