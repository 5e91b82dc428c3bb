//! Reads a resource from an `https://`/`http://` URL, a `file://` URL or a local path.
//!
//! HTTPS uses the operating system's trust store (rustls platform verifier), so that a machine
//! behind a TLS-inspecting proxy works as long as the proxy's CA is installed system-wide.
//! Certificate verification is never disabled.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why a resource could not be read.
#[derive(Debug)]
pub enum FetchError {
    /// The server (or file system) says the resource does not exist.
    NotFound {
        /// What was asked for.
        location: String,
    },
    /// The server could not be reached at all (DNS, connection refused, TLS, time-out).
    Unreachable {
        /// What was asked for.
        location: String,
        /// The transport error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered with an unexpected HTTP status.
    Status {
        /// What was asked for.
        location: String,
        /// The HTTP status code.
        code: u16,
    },
    /// A local file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NotFound { location } => write!(f, "not found: {location}"),
            FetchError::Unreachable { location, .. } => write!(f, "cannot reach {location}"),
            FetchError::Status { location, code } => write!(f, "HTTP {code} from {location}"),
            FetchError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FetchError::Unreachable { source, .. } => Some(source.as_ref()),
            FetchError::Io { source, .. } => Some(source),
            FetchError::NotFound { .. } | FetchError::Status { .. } => None,
        }
    }
}

/// Largest resource we accept (model jars are well under 1 MiB).
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `location`: an http(s) URL, a `file://` URL or a local path.
pub fn fetch(location: &str) -> Result<Vec<u8>, FetchError> {
    if location.starts_with("https://") || location.starts_with("http://") {
        fetch_http(location)
    } else {
        let path = local_path(location);
        std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                FetchError::NotFound {
                    location: path.display().to_string(),
                }
            } else {
                FetchError::Io { path, source }
            }
        })
    }
}

/// The local path for a `file://` URL or a plain path.
pub fn local_path(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

fn fetch_http(url: &str) -> Result<Vec<u8>, FetchError> {
    let config = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut response = agent
        .get(url)
        .call()
        .map_err(|err| FetchError::Unreachable {
            location: url.to_string(),
            source: Box::new(err),
        })?;
    match response.status().as_u16() {
        200 => response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|err| FetchError::Unreachable {
                location: url.to_string(),
                source: Box::new(err),
            }),
        404 | 410 => Err(FetchError::NotFound {
            location: url.to_string(),
        }),
        code => Err(FetchError::Status {
            location: url.to_string(),
            code,
        }),
    }
}
