//! AWS credentials for a device from its X.509 certificate, through the **AWS IoT credentials
//! endpoint**, the way Kinesis Video Streams cameras authenticate (the KVS WebRTC C SDK and the
//! producer SDK's `kvssink` do the same): the certificate and key registered with AWS IoT are
//! presented over mutual TLS at `https://<prefix>.credentials.iot.<region>.amazonaws.com`, and
//! `GET /role-aliases/<alias>/credentials` with the header `x-amzn-iot-thingname: <thing>`
//! answers with temporary credentials of the role behind the role alias.
//!
//! [`IotCredentialsProvider`] implements the AWS SDK for Rust's
//! [`ProvideCredentials`](aws_credential_types::provider::ProvideCredentials), so it goes
//! wherever the SDK takes credentials:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kvs_iot_credentials::IotCredentialsProvider;
//!
//! let provider = IotCredentialsProvider::builder()
//!     .endpoint("c1a2b3c4d5e6f7.credentials.iot.us-west-2.amazonaws.com")
//!     .role_alias("KvsCameraIoTRoleAlias")
//!     .thing_name("front-door")
//!     .certificate_pem_file("front-door.cert.pem")?
//!     .private_key_pem_file("front-door.private.key")?
//!     .build()?;
//! let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
//!     .region(aws_config::Region::new("us-west-2"))
//!     .credentials_provider(provider)
//!     .load()
//!     .await;
//! // kvs_webrtc_ingest::Client::new(&sdk_config)?.ingest().channel("front-door")...
//! # Ok(()) }
//! ```
//!
//! # Caching and refresh
//!
//! Credentials are cached and handed out until a margin before they expire (a quarter of their
//! lifetime, at most 5 minutes, plus a random jitter of up to a tenth of it, at most a minute,
//! so that a fleet does not come back at the same moment). Concurrent callers share one
//! refresh. If a refresh fails while the current credentials still last (the endpoint is down
//! for a moment), they go on being used and the refresh is tried again 10 s later; once they
//! have expired, the error is returned. The signaling client asks for credentials every time
//! it (re)connects, so a reconnection is signed with fresh ones.
//!
//! # Errors
//!
//! [`Error::kind`] says what went wrong, the message what to do: a certificate the endpoint
//! refuses (unregistered, inactive, expired, a CA it does not trust, a key that is not the
//! certificate's), a certificate not attached to the thing, an unknown role alias, a policy
//! that does not allow the role alias, an unreachable endpoint, a clock so wrong that fresh
//! credentials look expired.
//!
//! Written by hand, with reasons: the AWS SDK for Rust has no such provider (its feature
//! request has been open since 2022), and the exchange is one HTTPS request; TLS is `rustls`
//! (verification on, the system's roots plus an optional CA) and HTTP/1.1 is `hyper`'s.

mod error;
mod fetch;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod provider;
mod refresh;

pub use error::{Error, ErrorKind};
pub use provider::{Builder, IotCredentialsProvider, DEFAULT_TIMEOUT};
