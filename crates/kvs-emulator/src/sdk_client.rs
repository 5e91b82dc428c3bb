//! What an AWS SDK for Rust client needs to talk to the emulator: the test credentials and an
//! HTTPS client that trusts the emulator's CA. Used by [`EmulatorHandle::sdk_config`] and by
//! tests that point clients at a `kvs-emulator serve` process.
//!
//! [`EmulatorHandle::sdk_config`]: crate::EmulatorHandle::sdk_config

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::AccessKey;
use crate::error::{Error, ErrorKind};

impl AccessKey {
    /// This key as AWS SDK credentials.
    pub fn credentials(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "kvs-emulator",
        )
    }
}

/// An HTTPS client for AWS SDK clients that trusts the CA in `ca_pem` and nothing else
/// (verification stays on).
///
/// # Errors
/// [`ErrorKind::Tls`] when the PEM cannot be loaded into a trust store.
pub fn https_client_trusting(ca_pem: &str) -> Result<SharedHttpClient, Error> {
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(ca_pem.as_bytes()))
        .build()
        .map_err(|e| Error::with_source(ErrorKind::Tls, "the emulator CA cannot be trusted", e))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https())
}
