//! The crate's one public error: what failed, in words a user can act on, with a kind to match.

use std::fmt;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
                    .map_or(ErrorKind::GaveUp, |d| d.kind().into())
            }
            _ => ErrorKind::GaveUp,
        };
        Self::new(kind, context).with_source(e)
    }

    /// Bad media input: `what` names the input ("the video file cam.h264"); the media error
    /// says what is wrong with it.
    pub(crate) fn media(what: &str, e: kvs_media::MediaError) -> Self {
        Self::new(ErrorKind::InvalidInput, format!("{what} is not usable")).with_source(e)
    }
}

/// Our kind for a discovery failure (also the source of a signaling `Discovery` error): the
/// one mapping, which `kvs-ingest join` uses for its exit codes too.
impl From<kvs_webrtc_discovery::ErrorKind> for ErrorKind {
    fn from(kind: kvs_webrtc_discovery::ErrorKind) -> Self {
        use kvs_webrtc_discovery::ErrorKind as D;
        match kind {
            D::InvalidInput => Self::InvalidInput,
            D::Config => Self::Config,
            D::AccessDenied => Self::AccessDenied,
            D::ChannelNotFound | D::ChannelNotUsable | D::StorageDisabled | D::NoStreamMapped => {
                Self::ChannelNotUsable
            }
            _ => Self::GaveUp,
        }
    }
}

/// Shows an error with its causes, each once: `{}` on one line (`message: cause: cause`),
/// `{:#}` one per line (`message`, then `  caused by: cause`).
///
/// Every error of this workspace keeps its cause out of its own message (the AWS SDK rule), so
/// nothing is repeated. The one exception it handles is a transparent wrapper, an error that
/// displays exactly as its own source (the generated SDK's operation errors do this, e.g.
/// `JoinStorageSessionError` around `ClientLimitExceededException`): that text is shown once.
///
/// ```
/// use kvs_webrtc_ingest::ErrorChain;
///
/// let error = std::io::Error::other("disk full");
/// assert_eq!(ErrorChain(&error).to_string(), "disk full");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = if f.alternate() {
            "\n  caused by: "
        } else {
            ": "
        };
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if text != shown {
                write!(f, "{separator}{text}")?;
                shown = text;
            }
            source = cause.source();
        }
        Ok(())
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
    fn display_is_the_message_and_the_cause_is_shown_once_by_the_chain() {
        let cause = kvs_media::MediaError::Truncated {
            what: "a slice NAL unit".into(),
        };
        let error = Error::media("the video file cam.h264", cause);
        assert_eq!(error.to_string(), "the video file cam.h264 is not usable");
        assert_eq!(
            ErrorChain(&error).to_string(),
            "the video file cam.h264 is not usable: the input ends inside a slice NAL unit"
        );
        assert_eq!(
            format!("{:#}", ErrorChain(&error)),
            "the video file cam.h264 is not usable\n  caused by: the input ends inside a slice NAL unit"
        );
    }

    #[test]
    fn a_transparent_wrapper_is_shown_once() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Error::new(ErrorKind::GaveUp, "joining failed")
            .with_source(Wrapper(std::io::Error::other("throttled")));
        assert_eq!(ErrorChain(&error).to_string(), "joining failed: throttled");
    }

    #[test]
    fn a_discovery_kind_maps_once_for_the_driver_and_the_cli() {
        use kvs_webrtc_discovery::ErrorKind as D;
        assert_eq!(
            ErrorKind::from(D::StorageDisabled),
            ErrorKind::ChannelNotUsable
        );
        assert_eq!(ErrorKind::from(D::AccessDenied), ErrorKind::AccessDenied);
        assert_eq!(ErrorKind::from(D::Throttled), ErrorKind::GaveUp);
    }
}
