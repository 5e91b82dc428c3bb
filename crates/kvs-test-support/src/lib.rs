//! The workspace's test harness (not published): the one place where tests start servers on
//! 127.0.0.1, build clients against them and check what they recorded, with bounded waits.
//!
//! * [`TestEmulator`] and [`Service`]: an emulator (temporary, generated CA trusted, channels
//!   seeded or made over the API), the official AWS SDK clients, discovery, signaling and
//!   ingest clients against it, and its inspection and fault API; [`serve`] starts the
//!   `kvs-emulator serve` binary for the tests that need it as a process.
//! * [`IngestSetup`] and [`SampleClip`]: an emulator with a storage channel and the sample
//!   clip as files, for the ingestion tests.
//! * [`raw`]: the wire below the SDKs (presigning with `aws-sigv4`, raw HTTPS, signaling
//!   frames), for the emulator's own tests.
//! * [`recording`]: ffprobe and ffmpeg on what the emulator recorded; [`store`]: the
//!   fragments a stream's store keeps; [`sdp`]: malformed SDP.
//! * [`wait_until`], [`wait_for`] and [`WAIT`]: polling with a bound and a message.
//! * [`Coturn`]: the coturn TURN server (Debian package `coturn`, installed by
//!   `cargo xtask test`) with the TURN REST shared-secret scheme KVS uses, and UDP, TCP and
//!   TLS listeners; [`TestCa`]: a CA and a server certificate for `127.0.0.1` and `localhost`.
//! * [`IngestCli`]: the `kvs-ingest` binary run against an emulator the way AWS is reached.
//! * [`SimTurnServer`]: turn-server-proto's sans-IO TURN server for simulated-time tests.
//! * [`StoragePeerBrowser`]: headless Chromium on the emulator's storage-peer page, an
//!   independent WebRTC stack receiving what a device sends; [`PageBrowser`]: headless
//!   Chromium on any emulator page, driven over DevTools (JavaScript, screenshots).

mod browser;
mod cli;
mod coturn;
mod emulator;
mod ingest;
mod page_browser;
mod pki;
pub mod raw;
pub mod recording;
pub mod sdp;
pub mod store;
mod turn_sim;
mod wait;

pub use browser::StoragePeerBrowser;
pub use cli::{text, workspace_bin, IngestCli};
pub use coturn::Coturn;
pub use emulator::{ingest_client, serve, Service, StorageMaster, TestEmulator, TEST_OFFER_DELAY};
pub use ingest::{chain, opus_packets, run_to_end, IngestSetup, SampleClip};
pub use page_browser::PageBrowser;
pub use pki::TestCa;
pub use turn_sim::{Sent, SimTurnServer};
pub use wait::{check, wait_for, wait_for_within, wait_until, wait_until_within, WAIT};
