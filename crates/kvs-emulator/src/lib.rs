//! A local stand-in for the AWS side of Kinesis Video Streams WebRTC ingestion.
//!
//! One process, bound to 127.0.0.1, serves what a device talks to when it ingests media through
//! WebRTC, well enough that unmodified clients (the AWS SDKs, the AWS CLI, the KVS WebRTC SDKs)
//! cannot tell it from the service for these APIs:
//!
//! | Endpoint | What | Module |
//! | --- | --- | --- |
//! | control plane | `kinesisvideo` restJson1: channels, streams (`ListStreams` too), media storage, endpoints; kept across restarts in a file when asked (`registry_file`) | `control_plane` |
//! | control plane (data endpoint) | `kinesis-video-archived-media`: `ListFragments`, `GetMediaForFragmentList`, `GetClip`, `GetHLSStreamingSessionURL`, `GetDASHStreamingSessionURL`, `GetImages` (JPEG and PNG decoded by OpenH264, the `images` feature) | `archived_media`, `playback`, `images` |
//! | control plane (data endpoint) | `kinesis-video-media`: `GetMedia`, a chunked body that follows live ingestion | `get_media` |
//! | channel HTTPS | `POST /v1/get-ice-server-config` | `ice_config` |
//! | channel WSS | the signaling WebSocket, SigV4-presigned | `signaling` |
//! | channel WEBRTC | `JoinStorageSession`, `JoinStorageSessionAsViewer` | `storage` |
//! | IoT credentials (`iotCredentials`, mutual TLS) | `GET /role-aliases/<alias>/credentials`: a device certificate issued by the emulator's CA ([`EmulatorHandle::issue_device_certificate`], `kvs-emulator cert issue`) for temporary credentials the SigV4 checks accept until they expire | `iot` |
//!
//! Each endpoint is one row of a table (`emulator.rs`): a listener, its URL in [`Endpoints`]
//! and its handler; the AWS JSON APIs among them share one prologue (`json_api`: preflight,
//! bounded body, SigV4, throttling, errors in the API's form). A new API joins by adding a row
//! and a route.
//!
//! Each accepted join starts a **storage peer**, a real WebRTC peer built on `str0m` that sends its
//! offer over the signaling socket, checks the answer and the media (H.264 + Opus) as the service
//! does, and records each session into a Matroska file that `ffprobe` and players read. The master's
//! media also goes into the **stream store** of the channel's Kinesis video stream (`store`):
//! fragments cut at keyframes, H.264 + AAC (transcoded from the Opus, as the service does), on
//! disk in the data directory and read back through the archived-media APIs, HLS and DASH
//! playback among them (`playback`: session URLs with signed tokens, playlists, manifests and
//! fMP4 fragments). Viewers
//! get the master's media through a relay (`relay`); an embedded TURN server (UDP) backs
//! the GetIceServerConfig entries ([`TurnMode`]); per-API rates are throttled like AWS
//! ([`Throttling`]).
//!
//! An inspection and fault API lives under [`inspect::PREFIX`] on the control-plane listener.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kvs_emulator::Error> {
//! use kvs_emulator::{Emulator, TlsMode};
//!
//! let emulator = Emulator::builder()
//!     .tls(TlsMode::GeneratedCa { dir: "target/kvs-emulator".into() })
//!     .recordings_dir("target/kvs-emulator/recordings")
//!     .start()
//!     .await?;
//! println!("{}", emulator.startup_info());
//! // Point clients at emulator.endpoint_url(), trusting emulator.ca_cert_path().
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Written by hand, with reasons: SigV4 *verification* (crates only sign), a Matroska writer (no
//! maintained Rust muxer writes H.264 into Matroska), and the H.264 SPS reader (a few dozen lines
//! that the checks need). Everything else is well-kept crates: `hyper`, `rustls`, `rcgen`,
//! `tokio-tungstenite`, `str0m` and the webrtc-rs `turn` server.

mod api_error;
mod archived_media;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
mod config;
mod control_plane;
mod emulator;
mod error;
mod external_peers;
mod faults;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod get_media;
pub mod heap_window;
mod hosts;
mod http_server;
mod http_util;
mod hub;
mod ice_config;
mod images;
mod impairment;
pub mod inspect;
mod iot;
mod json_api;
mod link;
mod media;
mod playback;
mod player;
mod registry;
mod registry_file;
mod relay;
mod sdk_client;
mod sessions;
mod shared;
mod signaling;
mod sigv4;
pub mod stderr_log;
mod storage;
mod store;
mod temporary_keys;
mod throttle;
mod tls;
mod turn_server;
mod udp_buffers;
mod validate;
mod wire;

pub use config::{AccessKey, EmulatorConfig, Limits, Timings, TlsMode, TurnMode};
pub use emulator::{Emulator, EmulatorBuilder, EmulatorHandle, Stopped};
pub use error::{Error, ErrorKind};
pub use faults::ChannelFaults;
pub use hub::ConnectionInfo;
pub use impairment::{ArmedImpairment, Direction, Impairment, ImpairmentError, LinkCounters};
pub use iot::{issue_device_certificate_files, DEFAULT_CREDENTIAL_DURATION, DEFAULT_ROLE_ALIAS};
pub use media::sink::{MediaStats, TrackStats};
pub use player::scripts::{PlayerScripts, NPM_REGISTRY};
pub use registry::{Channel, Stream};
pub use sdk_client::https_client_trusting;
pub use sessions::{SessionInfo, SessionState};
pub use shared::Endpoints;
pub use store::feed::StoreStats;
pub use store::FragmentMeta;
pub use throttle::{FragmentQuotas, Throttling, TpsLimit};
