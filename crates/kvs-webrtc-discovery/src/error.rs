//! The crate's one public error: a short message that says what failed on which channel, a
//! matchable [`ErrorKind`], and the underlying SDK error behind [`std::error::Error::source`].

use std::fmt;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument was refused locally (pattern, length, missing) or by the service
    /// (`InvalidArgumentException`).
    InvalidInput,
    /// The configuration cannot work: no region or no credentials provider.
    Config,
    /// The channel does not exist (or was deleted).
    ChannelNotFound,
    /// The channel exists but cannot be used now: it is being deleted, or it is not a
    /// `SINGLE_MASTER` channel.
    ChannelNotUsable,
    /// Media storage is disabled on the channel, so there is no storage session to join.
    StorageDisabled,
    /// Media storage names no stream for the channel.
    NoStreamMapped,
    /// The service did not return an endpoint this client needs (WSS, HTTPS or WEBRTC).
    EndpointMissing,
    /// The credentials were refused (unknown key, bad signature, expired token, no permission).
    AccessDenied,
    /// The service throttled the call (`ClientLimitExceededException`); retry later.
    Throttled,
    /// The request did not complete: connection refused, TLS failure, timeout.
    Network,
    /// The service answered with an error not listed above.
    Service,
}

/// An error from discovery: `kind()` for matching, `Display` for people, `source()` for the
/// cause (typically the AWS SDK's error, with its request id).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    service_code: Option<String>,
    source: Option<BoxError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            service_code: None,
            source: None,
        }
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Map an AWS SDK error of `operation` on `target` (a channel name or ARN, an endpoint).
    /// The service's error code goes into the message; its message stays in the source.
    pub(crate) fn from_sdk<E>(operation: &str, target: &str, err: SdkError<E, Response>) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let service_code = match &err {
            SdkError::ServiceError(ctx) => ctx.err().code().map(str::to_owned),
            _ => None,
        };
        let (kind, what) = match &err {
            SdkError::ServiceError(ctx) => {
                let code = ctx.err().code().unwrap_or("an unnamed error").to_owned();
                let kind = match code.as_str() {
                    "ResourceNotFoundException" => ErrorKind::ChannelNotFound,
                    "AccessDeniedException"
                    | "NotAuthorizedException"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException" => ErrorKind::AccessDenied,
                    "ClientLimitExceededException" | "ThrottlingException" => ErrorKind::Throttled,
                    "InvalidArgumentException" | "ValidationException" => ErrorKind::InvalidInput,
                    _ => ErrorKind::Service,
                };
                let request_id = ctx.raw().headers().get("x-amzn-RequestId");
                let what = match request_id {
                    Some(id) => format!("{code}, request id {id}"),
                    None => code,
                };
                (kind, what)
            }
            SdkError::ConstructionFailure(_) => (
                ErrorKind::Config,
                "the request could not be built; check the region and credentials in the SdkConfig"
                    .to_owned(),
            ),
            SdkError::TimeoutError(_) => (ErrorKind::Network, "timed out".to_owned()),
            SdkError::DispatchFailure(_) => (
                ErrorKind::Network,
                "it could not be sent (connection or TLS failure)".to_owned(),
            ),
            _ => (
                ErrorKind::Network,
                "the response could not be read".to_owned(),
            ),
        };
        let mut error =
            Self::new(kind, format!("{operation} for `{target}` failed: {what}")).with_source(err);
        error.service_code = service_code;
        error
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The AWS error code (e.g. `ResourceNotFoundException`) when the service answered with one.
    pub fn service_code(&self) -> Option<&str> {
        self.service_code.as_deref()
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
    fn display_is_the_message_and_the_cause_is_only_in_source() {
        let cause = std::io::Error::other("socket closed");
        let err = Error::new(
            ErrorKind::Network,
            "DescribeSignalingChannel for `cam` failed",
        )
        .with_source(cause);
        assert_eq!(err.to_string(), "DescribeSignalingChannel for `cam` failed");
        let source = std::error::Error::source(&err).expect("source");
        assert_eq!(source.to_string(), "socket closed");
        assert_eq!(err.kind(), ErrorKind::Network);
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
