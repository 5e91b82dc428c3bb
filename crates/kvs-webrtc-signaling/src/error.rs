//! The crate's one public error: a short message, a matchable [`ErrorKind`], and the cause
//! behind [`std::error::Error::source`].

use std::fmt;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument was refused locally (endpoint, channel, client id, message content).
    InvalidInput,
    /// Configuration is missing or unusable (no credentials provider, bad CA certificate).
    Config,
    /// Endpoint discovery failed; the source is a `kvs_webrtc_discovery::Error`.
    Discovery,
    /// The service refused the credentials or the signature (HTTP 403 on the upgrade).
    AccessDenied,
    /// The channel does not exist (HTTP 404 on the upgrade).
    ChannelNotFound,
    /// The service refused the connection for a limit (ClientLimitExceeded, too many viewers).
    Throttled,
    /// The WebSocket could not be opened or broke: DNS, TCP, TLS, timeout.
    Network,
    /// The message is larger than the service accepts (10 000 base64 characters); it was not
    /// sent.
    MessageTooLarge,
    /// The socket is not connected right now (it is reconnecting); the message was not sent.
    NotConnected,
    /// The connection was closed for good ([`SignalingConnection::close`](crate::SignalingConnection::close)
    /// or reconnecting gave up).
    Closed,
}

/// An error from the signaling client.
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

    /// Wrap a discovery failure, keeping the kinds callers match on most.
    pub(crate) fn discovery(err: kvs_webrtc_discovery::Error) -> Self {
        use kvs_webrtc_discovery::ErrorKind as D;
        let kind = match err.kind() {
            D::InvalidInput => ErrorKind::InvalidInput,
            D::AccessDenied => ErrorKind::AccessDenied,
            D::ChannelNotFound => ErrorKind::ChannelNotFound,
            D::Throttled => ErrorKind::Throttled,
            D::Network => ErrorKind::Network,
            D::Config => ErrorKind::Config,
            _ => ErrorKind::Discovery,
        };
        // The discovery error's own message stays in `source()` only, so that a chain printer
        // (`{:#}`, DisplayErrorContext) shows it once.
        Self::new(kind, "finding the channel or its endpoints failed").with_source(err)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether trying again later can succeed (network trouble, throttling, a socket that is
    /// reconnecting).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Network | ErrorKind::Throttled | ErrorKind::NotConnected
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_discovery_error_is_shown_once_in_the_chain() {
        let inner = kvs_webrtc_discovery::ChannelId::parse("").unwrap_err();
        let inner_text = inner.to_string();
        let err = Error::discovery(inner);
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let mut chain = vec![err.to_string()];
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        let joined = chain.join(": ");
        assert_eq!(joined.matches(inner_text.as_str()).count(), 1, "{joined}");
        assert!(!err.to_string().contains(&inner_text), "{err}");
    }
}
