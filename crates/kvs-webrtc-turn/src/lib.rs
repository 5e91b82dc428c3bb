//! TURN relays for Kinesis Video Streams WebRTC ingestion, sans-IO.
//!
//! KVS hands devices TURN servers through GetIceServerConfig (`turn:HOST:443?transport=udp`,
//! `turns:HOST:443?transport=udp`, `turns:HOST:443?transport=tcp`, credentials valid for
//! `Ttl` seconds), and many networks only let TLS on port 443 out. This crate is the client
//! side of those servers for an ICE agent (str0m has none):
//!
//! * [`TurnUri`]: the URIs, with the transport each one means ([`RelayTransport`]); like the
//!   KVS C SDK, `turns:…?transport=udp` (TURN over DTLS) is recognised and skipped.
//! * [`Allocation`]: one allocation's state machine: no socket, task or clock; the caller
//!   feeds bytes and time and sends what it is given (str0m's style). UDP datagrams, TCP
//!   streams framed per RFC 6062, and TLS (the caller runs TLS and feeds the plaintext, so
//!   certificate checks stay with the caller's trusted roots).
//!
//! ## Why turn-client-proto underneath
//! The STUN/TURN codec and the allocation protocol (long-term credentials with the 401
//! challenge, realm, nonce and stale-nonce retries; Refresh before expiry; CreatePermission;
//! ChannelBind; Send/Data indications; ChannelData; RFC 6062 stream framing; deallocation)
//! are [turn-client-proto](https://docs.rs/turn-client-proto)'s, a maintained sans-IO TURN
//! client (part of the librice ICE stack, MIT/Apache-2.0). Writing another codec would add
//! risk, not value. What it lacks for an ingestion client, this crate adds: failures as typed
//! reasons (wrong credentials versus an unreachable server versus a refusal), the stream
//! framing of RFC 6062 (turn-client-proto 0.7 does not pad ChannelData on TCP nor skip the
//! padding it receives, which breaks a stream to coturn at the first odd-sized packet; see
//! `framing.rs`), packets held
//! while a peer's permission is installed, channels bound on first use, and counters. Its
//! decoder is exercised by this crate's property tests (malformed attributes, truncation,
//! wrong lengths, wrong MESSAGE-INTEGRITY).
//!
//! turn-client-proto logs every poll at `INFO` through `tracing`; filter its target
//! (`turn_client_proto=warn,stun_proto=warn`) in your subscriber.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kvs_webrtc_turn::{Allocation, AllocationConfig, AllocationState, TurnUri};
//!
//! let uri = TurnUri::parse("turn:127.0.0.1:3478?transport=udp")?;
//! let now = Instant::now();
//! let mut allocation = Allocation::new(now, AllocationConfig {
//!     transport: uri.relay_transport().expect("TURN over UDP"),
//!     local: "127.0.0.1:50000".parse()?,
//!     server: uri.host_port().parse()?,
//!     username: "1700000000:device".into(),
//!     password: "from GetIceServerConfig".into(),
//!     allocate_timeout: Duration::from_secs(8),
//! });
//! let allocate_request = allocation.poll_transmit(now).expect("the Allocate request");
//! assert!(!allocate_request.is_empty());
//! assert_eq!(allocation.state(), &AllocationState::Allocating);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod allocation;
mod clock;
mod error;
mod framing;
mod uri;

pub use allocation::{
    Allocation, AllocationConfig, AllocationEvent, AllocationState, AllocationStats, PeerData,
};
pub use error::{AllocationError, UriError};
pub use uri::{RelayTransport, TurnUri};
