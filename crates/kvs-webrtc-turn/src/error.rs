//! Typed errors: a URI that does not parse, and why an allocation failed.

use std::time::Duration;

/// A TURN URI that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TURN URI {uri:?} is not valid: {reason}")]
pub struct UriError {
    uri: String,
    reason: String,
}

impl UriError {
    pub(crate) fn new(uri: &str, reason: &str) -> Self {
        Self {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// The URI as given.
    pub fn uri(&self) -> &str {
        &self.uri
    }
}

/// Why an allocation failed or ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocationError {
    /// The server refused the credentials (401 Unauthorized or 441 Wrong Credentials): a
    /// wrong password, or TURN credentials past their expiry (GetIceServerConfig's `Ttl`).
    #[error("the TURN server refused the credentials ({code} {reason}): the password is wrong or the credentials expired; fetch new ones with GetIceServerConfig")]
    Unauthorized {
        /// The STUN error code.
        code: u16,
        /// The server's reason phrase.
        reason: String,
    },
    /// The server answered the allocation with another error (quota reached, insufficient
    /// capacity, ...).
    #[error("the TURN server refused the allocation ({code} {reason})")]
    Rejected {
        /// The STUN error code.
        code: u16,
        /// The server's reason phrase.
        reason: String,
    },
    /// Nothing came back from the server: it is unreachable, or not a TURN server.
    #[error("the TURN server did not answer within {after:?}: is it reachable (firewall, address, port)?")]
    NoAnswer {
        /// How long the client waited.
        after: Duration,
    },
    /// The server answered but no allocation came of it in time.
    #[error("the TURN server answered but did not grant an allocation within {after:?}")]
    NotGranted {
        /// How long the client waited.
        after: Duration,
    },
    /// The TCP or TLS connection to the server ended, or could not be made.
    #[error("the connection to the TURN server failed: {reason}")]
    Connection {
        /// What the socket layer said.
        reason: String,
    },
    /// The allocation ended on the server (its refresh failed).
    #[error("the TURN allocation ended: its refresh failed")]
    Expired,
}
