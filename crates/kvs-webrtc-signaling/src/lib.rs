//! A signaling WebSocket client for Amazon Kinesis Video Streams WebRTC, made for ingestion
//! (the storage session's offer arrives on this socket) and usable for peer-to-peer channels.
//!
//! - **Connect** as master or viewer with a SigV4-presigned URL (service `kinesisvideo`, the
//!   session token inside the signed query, 299 s validity), found through
//!   [`kvs_webrtc_discovery`]. Logs never show the signature or the token.
//! - **Typed messages** both ways ([`SignalingMessage`], [`Outgoing`]), base64 JSON payloads,
//!   storage messages without `senderClientId`, unknown frames ignored. Every sent message
//!   carries a correlation id, and a STATUS_RESPONSE comes back as [`Event::Rejected`] with
//!   that id.
//! - **Stays connected**: keep-alive pings; on a drop it reconnects with exponential backoff
//!   and jitter, signing a fresh URL each time; GO_AWAY reconnects at once;
//!   RECONNECT_ICE_SERVER refreshes the ICE servers ([`Event::IceServersRefreshed`]) and
//!   reconnects. Every state change is an [`Event::StateChanged`]. (The policy is a sans-IO
//!   part, `reconnect.rs`, tested with simulated time; the socket's protocol state is another,
//!   `session.rs`; the task between them and the socket only moves frames and time.) After each reconnection a
//!   storage client calls JoinStorageSession again.
//! - **Service limits on the sending side**: payloads over 10 000 base64 characters are refused
//!   before sending ([`ErrorKind::MessageTooLarge`]); SDP messages are paced to 5 per second
//!   and candidates to 20 per second per connection, in order.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kvs_webrtc_signaling::{Client, ConnectionState, Event, SignalingMessage};
//!
//! let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let discovery = kvs_webrtc_discovery::Client::new(&sdk_config);
//! let mut connection = Client::new(discovery.clone())?
//!     .connect()
//!     .channel("front-door")
//!     .send()
//!     .await?;
//! while let Some(event) = connection.next_event().await {
//!     match event {
//!         // First connection and every reconnection: ask for a (new) storage session.
//!         Event::StateChanged(ConnectionState::Connected { .. }) => {
//!             discovery.join_storage_session().channel("front-door").send().await?;
//!         }
//!         Event::Message(SignalingMessage::Offer { description, .. }) => {
//!             // hand description.sdp to the WebRTC stack, send its answer
//!         }
//!         Event::Rejected(rejection) => eprintln!("rejected: {:?}", rejection.status),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Why hand-written
//! The AWS SDK for Rust has no client for the signaling WebSocket (it is not a Smithy
//! operation). This crate uses `aws-sigv4` for presigning, `tokio-tungstenite` and `rustls`
//! for the socket, and writes only the protocol: the message format, the limits and the
//! reconnect policy of the AWS SDKs for C and JavaScript.

pub mod backoff;
mod client;
pub mod config;
mod connection;
mod driver;
mod error;
pub mod limits;
pub mod message;
pub mod presign;
mod reconnect;
mod session;
mod transport;

pub use backoff::Backoff;
pub use client::{Client, ConnectFluentBuilder};
pub use config::Config;
pub use connection::{ConnectionState, Event, Rejection, SignalingConnection, SignalingSender};
pub use error::{Error, ErrorKind};
pub use message::{
    Action, IceCandidate, Outgoing, SdpType, SessionDescription, SignalingMessage, StatusResponse,
};
