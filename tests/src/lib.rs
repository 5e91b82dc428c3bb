//! Workspace-level tests. The library is empty; see `tests/tests/*.rs`. Under `cargo test` the
//! README's Rust examples compile as doctests here, so they cannot drift from the crates.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The crates' own READMEs (what crates.io shows), compiled the same way.
#[cfg(doctest)]
pub mod crate_readmes {
    #[doc = include_str!("../../crates/kvs-webrtc-discovery/README.md")]
    pub struct Discovery;
    #[doc = include_str!("../../crates/kvs-webrtc-ingest/README.md")]
    pub struct Ingest;
    #[doc = include_str!("../../crates/kvs-iot-credentials/README.md")]
    pub struct IotCredentials;
}
