//! The ingestion tests' harness: an emulator on loopback with a storage channel, an ingest
//! client that trusts its CA, the sample clip as files, and what the storage peer recorded.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use kvs_emulator::{Emulator, EmulatorBuilder, EmulatorHandle, SessionInfo};
use kvs_webrtc_ingest::{Client, Config, ConfigBuilder, Timings};

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// An emulator with one storage channel, and the sample clip written to files.
pub struct Setup {
    pub emulator: EmulatorHandle,
    pub channel: String,
    pub channel_arn: String,
    pub files: tempfile::TempDir,
}

impl Setup {
    pub async fn start(channel: &str) -> Self {
        Self::start_with(channel, |b| b).await
    }

    /// [`Setup::start`] with more emulator settings (a TURN server, timings).
    pub async fn start_with(
        channel: &str,
        customize: impl FnOnce(EmulatorBuilder) -> EmulatorBuilder,
    ) -> Self {
        let builder = Emulator::builder()
            .temporary()
            .timings(|t| t.offer_delay = Duration::from_millis(50));
        let emulator = customize(builder).start().await.expect("emulator starts");
        let channel_arn = emulator
            .create_storage_channel(channel)
            .expect("channel created");
        let files = tempfile::tempdir().expect("temp dir");
        kvs_media::sample::write_files(files.path()).expect("sample clip written");
        Self {
            emulator,
            channel: channel.to_owned(),
            channel_arn,
            files,
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    /// An ingest client for this emulator (its CA trusted, TLS verification on).
    pub fn client(&self) -> Client {
        self.client_with(Timings::default())
    }

    pub fn client_with(&self, timings: Timings) -> Client {
        self.client_configured(None, |c| c.timings(timings))
    }

    /// A client that also trusts `extra_ca` (a TURN server's), configured by `configure`.
    pub fn client_configured(
        &self,
        extra_ca: Option<&str>,
        configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Client {
        self.client_over(None, extra_ca, configure)
    }

    /// [`Setup::client_configured`], refreshing TURN credentials `ice_refresh_grace` before
    /// their TTL ends (default 30 s).
    pub fn client_over(
        &self,
        ice_refresh_grace: Option<Duration>,
        extra_ca: Option<&str>,
        configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Client {
        // Keep-alive at 1 s + 1 s so that a frozen socket is noticed quickly.
        let sdk_config = self.emulator.sdk_config().expect("SDK config");
        let mut discovery = kvs_webrtc_discovery::Config::builder().sdk_config(sdk_config);
        if let Some(grace) = ice_refresh_grace {
            discovery = discovery.ice_refresh_grace(grace);
        }
        let discovery = kvs_webrtc_discovery::Client::from_conf(discovery.build());
        let mut signaling = kvs_webrtc_signaling::Config::builder(discovery)
            .trust_root_certificate_pem(self.emulator.ca_cert_pem().expect("TLS is on"))
            .keep_alive(Duration::from_secs(1), Duration::from_secs(1));
        if let Some(ca) = extra_ca {
            signaling = signaling.trust_root_certificate_pem(ca);
        }
        let signaling =
            kvs_webrtc_signaling::Client::from_conf(signaling.build().expect("signaling config"));
        Client::from_conf(configure(Config::builder(signaling)).build())
    }

    /// Wait (bounded) until the emulator's sessions satisfy `done`.
    pub async fn wait_for_sessions(
        &self,
        what: &str,
        done: impl Fn(&[SessionInfo]) -> bool,
    ) -> Vec<SessionInfo> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let sessions = self.emulator.sessions();
            if done(&sessions) {
                return sessions;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {sessions:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Wait (bounded) until a session ends by itself (its sources ended), cleanly.
pub async fn run_to_end(session: kvs_webrtc_ingest::IngestSession) -> kvs_webrtc_ingest::Stats {
    tokio::time::timeout(WAIT, session.wait())
        .await
        .expect("the sources end within the wait")
        .expect("a clean end")
}

impl Setup {
    /// Wait (bounded) until the first storage session has received every frame `stats` says
    /// was sent.
    pub async fn received_all(&self, stats: &kvs_webrtc_ingest::Stats) -> Vec<SessionInfo> {
        let (video, audio) = (stats.video.frames_sent, stats.audio.frames_sent);
        self.wait_for_sessions("every frame sent to be received", |s| {
            s.first()
                .is_some_and(|s| s.media.video.frames == video && s.media.audio.frames == audio)
        })
        .await
    }
}

/// Opus packets in an Ogg Opus file, counted by the media crate's reader.
pub fn opus_packets(data: &[u8]) -> u64 {
    let mut reader = kvs_media::ogg::OggOpusReader::new(data).expect("Ogg Opus");
    let mut n = 0;
    while reader.next_packet().expect("packet").is_some() {
        n += 1;
    }
    n
}

/// `ffprobe`'s codec names of a recording's streams.
pub fn ffprobe_codecs(path: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (cargo xtask test installs it)");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// What `ffmpeg -v error` says when decoding a recording completely (empty: no error).
pub fn ffmpeg_decode_errors(path: &std::path::Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
