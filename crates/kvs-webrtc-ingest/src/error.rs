//! The crate's one public error: what failed, in words a user can act on, with a kind to match.

use std::fmt;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, for matching (and for a CLI's exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input cannot work: a missing track, a media file that is not what it should be, a
    /// bad channel name or ARN.
    InvalidInput,
    /// The configuration cannot work (no region, no credentials provider, a bad CA file).
    Config,
    /// The credentials were refused.
    AccessDenied,
    /// The channel does not exist, or it does not store media (storage disabled, no stream).
    ChannelNotUsable,
    /// The storage session could not be joined or kept, and retrying gave up.
    GaveUp,
    /// The session's own machinery failed (a socket could not be opened).
    Io,
    /// The ICE transport policy is relay-only and no TURN server gave an allocation (wrong
    /// credentials, unreachable, refused; the message names each server and why).
    Relay,
}

/// An error of the ingestion helper: `kind()` for matching, `Display` for people, `source()`
/// for the cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The failure from discovery or a storage call, mapped to our kinds.
    pub(crate) fn from_discovery(context: &str, e: kvs_webrtc_discovery::Error) -> Self {
        Self::new(discovery_kind(e.kind()), format!("{context}: {e}")).with_source(e)
    }

    /// The failure from the signaling client, mapped to our kinds.
    pub(crate) fn from_signaling(context: &str, e: kvs_webrtc_signaling::Error) -> Self {
        use kvs_webrtc_signaling::ErrorKind as S;
        let kind = match e.kind() {
            S::InvalidInput => ErrorKind::InvalidInput,
            S::Config => ErrorKind::Config,
            S::AccessDenied => ErrorKind::AccessDenied,
            S::ChannelNotFound => ErrorKind::ChannelNotUsable,
            S::Discovery => {
                // The discovery error is the source; keep its finer kind.
                std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<kvs_webrtc_discovery::Error>())
                    .map_or(ErrorKind::GaveUp, |d| discovery_kind(d.kind()))
            }
            _ => ErrorKind::GaveUp,
        };
        Self::new(kind, format!("{context}: {e}")).with_source(e)
    }

    /// Bad media input.
    pub(crate) fn media(what: &str, e: kvs_media::MediaError) -> Self {
        Self::new(ErrorKind::InvalidInput, format!("{what}: {e}")).with_source(e)
    }
}

/// Our kind for a discovery failure (also the source of a signaling `Discovery` error).
fn discovery_kind(kind: kvs_webrtc_discovery::ErrorKind) -> ErrorKind {
    use kvs_webrtc_discovery::ErrorKind as D;
    match kind {
        D::InvalidInput => ErrorKind::InvalidInput,
        D::Config => ErrorKind::Config,
        D::AccessDenied => ErrorKind::AccessDenied,
        D::ChannelNotFound | D::ChannelNotUsable | D::StorageDisabled | D::NoStreamMapped => {
            ErrorKind::ChannelNotUsable
        }
        _ => ErrorKind::GaveUp,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
