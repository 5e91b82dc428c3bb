//! Stream H.264 video and Opus audio into an Amazon Kinesis video stream through **WebRTC
//! ingestion** (the `kinesis-video-webrtc-storage` API), and keep it flowing.
//!
//! What a device needs, in one call: [`Client::ingest`] discovers the channel's endpoints,
//! opens the presigned signaling socket ([`kvs_webrtc_signaling`]), calls
//! `JoinStorageSession` (or `JoinStorageSessionAsViewer`), answers the storage peer's SDP offer
//! selecting H.264 (packetization mode 1, the source's profile) and Opus, trickles candidates
//! (host, and server-reflexive ones found through the STUN and TURN servers of
//! GetIceServerConfig; the peer's early candidates are buffered), and sends both tracks paced by
//! their timestamps. Then it keeps going:
//!
//! - no offer within 6 s → join again; throttled or failing joins → join again after an
//!   exponential backoff; bounded ([`Timings::max_join_attempts`]);
//! - a newer offer replaces the session (the most recent join wins); GO_AWAY,
//!   RECONNECT_ICE_SERVER, a dropped or frozen socket, an ICE/DTLS failure, a rejected answer
//!   and the 1-hour session limit all lead to a new join;
//! - every session starts at a keyframe, every keyframe carries SPS and PPS, a keyframe request
//!   (PLI/FIR) drops frames until the next keyframe (and asks a pushed source for one), NACKs
//!   are answered from str0m's send buffer;
//! - frames that fall more than [`Timings::max_lateness`] behind are dropped and counted, never
//!   queued without bound.
//!
//! [`IngestSession`] reports [`IngestEvent`]s and [`Stats`] and stops the session.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kvs_webrtc_ingest::{AudioSource, Client, IngestEvent, VideoSource};
//!
//! let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let mut session = Client::new(&sdk_config)?
//!     .ingest()
//!     .channel("front-door")
//!     .video(VideoSource::annex_b_file("camera.h264"))
//!     .audio(AudioSource::ogg_opus_file("microphone.opus"))
//!     .send()
//!     .await?;
//! while let Some(event) = session.next_event().await {
//!     if let IngestEvent::Connected { after_offer } = event {
//!         println!("streaming ({after_offer:?} after the offer)");
//!     }
//! }
//! let stats = session.wait().await?; // the files ended
//! println!("{} video frames, {} audio packets", stats.video.frames_sent, stats.audio.frames_sent);
//! # Ok(()) }
//! ```
//!
//! # Design
//! The rules live in sans-IO parts (inputs with the time, outputs, timeouts; no sockets and no
//! clock, which `clippy.toml` enforces), each tested with simulated time: the session core
//! (`session.rs`: join, answer, media, re-join, join failures; tested against a real str0m
//! offerer), pacing (`pacing.rs`), the ICE servers' lifecycle (`ice_servers.rs`), the TURN
//! relays (`relay.rs`), H.264 into RTP payloads (`packetize.rs`: str0m runs in RTP mode, as
//! its frame API scans and copies each frame again), GSO batching of outgoing datagrams
//! (`batch.rs`), statistics publication (`publish.rs`) and server-reflexive gathering
//! (`reflexive.rs`). Each takes inputs through
//! `handle_*` calls and is drained through `poll_output` until it has nothing more, with
//! `poll_timeout` for its next deadline, as str0m is. The tokio side is three small modules that
//! only move bytes and time between sockets, channels and the parts: `driver.rs` (the host
//! sockets, the signaling connection, the join calls and the session core), `tracks.rs` (the
//! sources' reader threads into the pacer, the pacer into the core) and `gathering.rs` (the ICE
//! server lookups, STUN and the TURN sockets around the relays); the answer and candidates go
//! out through a task of their own (`outbox.rs`) so that signaling never holds up media. WebRTC is `str0m` (pinned
//! exactly). Media parsing is the workspace's `kvs-media`, shared with the emulator.
//!
//! # Why hand-written
//! No AWS SDK covers this flow: the storage API is one generated call, signaling is a
//! WebSocket protocol, and WebRTC is str0m. What is ours is the glue the AWS SDKs for C and
//! JavaScript hand-write too: when to join, what to answer, and how to recover.

mod batch;
mod client;
mod config;
mod driver;
mod error;
mod event;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gathering;
mod handle;
mod ice_servers;
mod media;
mod net;
mod outbox;
mod pacing;
mod packetize;
mod publish;
mod reflexive;
mod relay;
mod relay_io;
mod session;
mod source;
mod tracks;
mod wake;

pub use client::{Client, IngestFluentBuilder};
pub use config::{Builder as ConfigBuilder, Config, IceTransportPolicy, DEFAULT_EVENT_QUEUE};
pub use error::{Error, ErrorChain, ErrorKind};
pub use event::{IngestEvent, IngestState, JoinReason, Stats, Track, TrackStats};
pub use handle::{IngestSession, Stopper};
pub use session::Timings;
pub use source::{
    AudioPacket, AudioSource, AudioWriter, ContainerSource, VideoFrame, VideoSource, VideoWriter,
    DEFAULT_FPS,
};
