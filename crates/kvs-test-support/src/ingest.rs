//! What the ingestion tests share: an emulator with one storage channel and the sample clip
//! as files ([`IngestSetup`]), ingest clients, and the end of a session.

use std::path::{Path, PathBuf};

use kvs_emulator::EmulatorBuilder;
use kvs_webrtc_ingest::{IngestSession, Stats};

use crate::emulator::TestEmulator;
use crate::wait::WAIT;

/// An emulator with one storage channel, and the sample clip written to files.
#[derive(Debug)]
pub struct IngestSetup {
    /// The emulator.
    pub emulator: TestEmulator,
    /// The storage channel's name.
    pub channel: String,
    /// Its ARN.
    pub channel_arn: String,
    /// The sample clip as files.
    pub clip: SampleClip,
}

impl IngestSetup {
    /// A test emulator with the storage channel `channel`.
    pub async fn start(channel: &str) -> Self {
        Self::start_with(channel, |b| b).await
    }

    /// [`IngestSetup::start`] with more emulator settings (a TURN server, timings).
    pub async fn start_with(
        channel: &str,
        tweak: impl FnOnce(EmulatorBuilder) -> EmulatorBuilder,
    ) -> Self {
        let emulator = TestEmulator::start_with(tweak).await;
        let channel_arn = emulator.create_storage_channel(channel);
        Self {
            emulator,
            channel: channel.to_owned(),
            channel_arn,
            clip: SampleClip::write(),
        }
    }

    /// A file of the clip's directory (`clip.h264`, `clip.opus`, or one a test wrote there).
    pub fn file(&self, name: &str) -> PathBuf {
        self.clip.dir().join(name)
    }

    /// The sample clip, video and audio looping, ingested into the channel by a client made
    /// from `config`.
    ///
    /// # Panics
    /// When the ingestion does not start.
    pub async fn ingest_looping(&self, config: kvs_webrtc_ingest::ConfigBuilder) -> IngestSession {
        crate::emulator::ingest_client(config)
            .ingest()
            .channel(&self.channel)
            .video(
                kvs_webrtc_ingest::VideoSource::annex_b_file(self.file("clip.h264")).looping(true),
            )
            .audio(
                kvs_webrtc_ingest::AudioSource::ogg_opus_file(self.file("clip.opus")).looping(true),
            )
            .send()
            .await
            .expect("ingestion starts")
    }

    /// The newest storage session, once `done` holds for it (a bounded wait).
    ///
    /// # Panics
    /// When it does not within the test support's wait.
    pub async fn newest_session_when(
        &self,
        what: &str,
        done: impl Fn(&kvs_emulator::SessionInfo) -> bool,
    ) -> kvs_emulator::SessionInfo {
        let newest = |s: &[kvs_emulator::SessionInfo]| s.iter().max_by_key(|s| s.id).cloned();
        let sessions = self
            .emulator
            .wait_for_sessions(what, |s| newest(s).is_some_and(|s| done(&s)))
            .await;
        newest(&sessions).expect("a session")
    }

    /// A ready ingest client ([`TestEmulator::ingest_client`]).
    pub fn client(&self) -> kvs_webrtc_ingest::Client {
        self.emulator.ingest_client()
    }
}

/// The project's sample clip (`kvs_media::sample`) as `clip.h264` and `clip.opus` in a
/// temporary directory, removed on drop.
#[derive(Debug)]
pub struct SampleClip {
    dir: tempfile::TempDir,
    /// The H.264 Annex-B file (25 fps).
    pub video: PathBuf,
    /// The Ogg Opus file.
    pub audio: PathBuf,
}

impl SampleClip {
    /// Write the clip.
    ///
    /// # Panics
    /// When the temporary directory cannot be written.
    pub fn write() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = kvs_media::sample::write_files(dir.path()).expect("the sample clip written");
        Self {
            dir,
            video: files.video,
            audio: files.audio,
        }
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Wait (bounded) until a session ends by itself (its sources ended), cleanly.
///
/// # Panics
/// When it does not end within [`WAIT`] or ends with an error.
pub async fn run_to_end(session: IngestSession) -> Stats {
    tokio::time::timeout(WAIT, session.wait())
        .await
        .expect("the sources end within the wait")
        .unwrap_or_else(|e| panic!("a clean end, not: {}", chain(&e)))
}

/// Opus packets in an Ogg Opus file, counted by the media crate's reader.
pub fn opus_packets(data: &[u8]) -> u64 {
    let mut reader = kvs_media::ogg::OggOpusReader::new(data).expect("Ogg Opus");
    let mut n = 0;
    while reader.next_packet().expect("a packet").is_some() {
        n += 1;
    }
    n
}

/// An error and its causes in one line (`message: cause: cause`), for assertions on what a
/// user would read.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    kvs_webrtc_ingest::ErrorChain(error).to_string()
}
