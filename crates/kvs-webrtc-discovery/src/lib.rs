//! Endpoint and ICE-server discovery for Amazon Kinesis Video Streams WebRTC ingestion.
//!
//! `JoinStorageSession` works only against a channel's **WEBRTC** endpoint, and the storage
//! session's SDP offer arrives only on the channel's **WSS** signaling socket. This crate finds
//! both, the way the AWS SDKs for C and JavaScript do:
//!
//! 1. DescribeSignalingChannel (by name or ARN);
//! 2. DescribeMediaStorageConfiguration: storage must be `ENABLED` with a stream mapped,
//!    otherwise an actionable [`ErrorKind::StorageDisabled`] or [`ErrorKind::NoStreamMapped`];
//! 3. GetSignalingChannelEndpoint for the role with protocols WSS, HTTPS and WEBRTC;
//! 4. a ready `aws_sdk_kinesisvideowebrtcstorage::Client` on the WEBRTC endpoint and an
//!    `aws_sdk_kinesisvideosignaling::Client` on the HTTPS endpoint, sharing the caller's
//!    credentials, retry, timeout and HTTP settings;
//! 5. GetIceServerConfig (TURN) plus the region's STUN URL.
//!
//! Lookups are cached per (channel, role) with a TTL, a lookup by name under the channel's ARN
//! too (sessions join and reconnect by ARN); concurrent callers share one lookup; the errors
//! that show an entry is stale drop it ([`Client::join_storage_session`] then retries once).
//! ICE servers are cached until their TTL minus a grace period.
//!
//! The signaling WebSocket client that uses all this is the `kvs-webrtc-signaling` crate.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), kvs_webrtc_discovery::Error> {
//! use kvs_webrtc_discovery::{Client, Role};
//!
//! let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let client = Client::new(&sdk_config);
//!
//! let found = client.discover().channel("front-door").role(Role::Master).send().await?;
//! println!("signaling: {}", found.endpoints().wss());
//! let ice = client.ice_servers().channel("front-door").send().await?;
//! println!("{} TURN servers, STUN {}", ice.turn_servers().len(), ice.stun_url());
//!
//! // With the signaling socket open (kvs-webrtc-signaling), ask for the storage session.
//! client.join_storage_session().channel("front-door").send().await?;
//! # Ok(()) }
//! ```
//!
//! # Why some of this is hand-written
//! The AWS SDK crates provide every call; what no crate provides is the flow between them
//! (which endpoint serves which API, the storage checks, caching with stale-entry
//! invalidation), which is this crate. The storage client is the generated
//! `kvs_sdk_kinesisvideowebrtcstorage` in this workspace's `generated/` (the official smithy-rs
//! output: AWS's `aws-sdk-kinesisvideowebrtcstorage` 1.109.0 under a name we publish), used as
//! `aws_sdk_kinesisvideowebrtcstorage` and re-exported as [`sdk::kinesisvideowebrtcstorage`].

mod cache;
mod client;
pub mod config;
mod error;
mod handle;
mod input;
pub mod operation;
mod output;

pub use cache::CacheStats;
pub use client::Client;
pub use config::Config;
pub use error::{Error, ErrorKind};
pub use input::{ChannelArn, ChannelId, ClientId, Role};
pub use operation::ice_servers::region_stun_url;
pub use output::{ChannelDetails, Discovery, Endpoints, IceServer, IceServers};

/// The AWS SDK crates this crate's public API exposes, re-exported so versions match.
pub mod sdk {
    pub use aws_sdk_kinesisvideo as kinesisvideo;
    pub use aws_sdk_kinesisvideosignaling as kinesisvideosignaling;
    pub use aws_sdk_kinesisvideowebrtcstorage as kinesisvideowebrtcstorage;
    pub use aws_types::SdkConfig;
}
