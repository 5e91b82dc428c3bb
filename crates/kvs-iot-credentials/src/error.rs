//! What can go wrong getting credentials from the IoT credentials endpoint, each kind with what
//! to do about it.

use std::fmt;

/// An error of [`IotCredentialsProvider`](crate::IotCredentialsProvider); [`Error::kind`] says
/// which, the message says what to fix, [`std::error::Error::source`] gives the cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The kinds of [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The settings cannot be used: a missing setting, a PEM file that cannot be read or holds
    /// no certificate or key, a key that does not belong to the certificate.
    Config,
    /// The endpoint refused the device certificate: not registered with AWS IoT, inactive,
    /// revoked, expired, or signed by a CA AWS IoT does not trust.
    CertificateRefused,
    /// The certificate is not attached to the thing named in `x-amzn-iot-thingname` (or the
    /// thing does not exist).
    ThingNotAttached,
    /// The role alias does not exist in this account and region.
    RoleAliasUnknown,
    /// The certificate's IoT policy does not allow `iot:AssumeRoleWithCertificate` on the role
    /// alias, or the role behind it cannot be assumed.
    AccessDenied,
    /// The endpoint could not be reached (DNS, connection, timeout), or it failed (throttled,
    /// 5xx). Retrying may help.
    Unreachable,
    /// The endpoint's server certificate is not trusted (a wrong endpoint or a missing CA).
    EndpointUntrusted,
    /// The credentials returned had already expired by this machine's clock: the clock is wrong.
    ClockSkew,
    /// The endpoint answered something that is not credentials.
    InvalidResponse,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Which kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether trying again later may succeed (the endpoint was unreachable or failed).
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Unreachable
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
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}
