//! The device's identity for mutual TLS: its certificate chain and private key (PEM), and the
//! roots that the endpoint's certificate is checked against (the system's, plus an optional CA
//! such as `AmazonRootCA1.pem` or an emulator's). Verification is always on.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, ErrorKind};

/// PEM text of the device certificate (chain), its private key, and an extra CA.
#[derive(Clone, Default)]
pub(crate) struct IdentityPem {
    pub(crate) certificate: Option<Vec<u8>>,
    pub(crate) private_key: Option<Vec<u8>>,
    pub(crate) ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for IdentityPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("IdentityPem")
            .field("certificate", &self.certificate.as_ref().map(Vec::len))
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "** redacted **"),
            )
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .finish()
    }
}

impl IdentityPem {
    /// The TLS client settings: the certificate and key presented, the roots trusted.
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let certificate = self.certificate.as_deref().ok_or_else(|| {
            config("no device certificate: give certificate_pem or certificate_pem_file")
        })?;
        let key = self.private_key.as_deref().ok_or_else(|| {
            config("no private key: give private_key_pem or private_key_pem_file")
        })?;
        let chain = CertificateDer::pem_slice_iter(certificate)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config("the device certificate is not valid PEM").with_source(e))?;
        if chain.is_empty() {
            return Err(config(
                "the device certificate PEM holds no CERTIFICATE block",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
            config("the private key is not a PEM private key (PKCS#8, PKCS#1 or SEC1)")
                .with_source(e)
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config("TLS cannot be set up").with_source(e))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                config("the private key cannot be used with the device certificate (is it the key the certificate was issued for?)")
                    .with_source(e)
            })?;
        Ok(Arc::new(tls))
    }

    fn roots(&self) -> Result<rustls::RootCertStore, Error> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for err in &native.errors {
            tracing::debug!(error = %err, "a system root certificate could not be loaded");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(ca) = &self.ca {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| config("the CA is not valid PEM").with_source(e))?;
                roots
                    .add(cert)
                    .map_err(|e| config("the CA certificate was refused").with_source(e))?;
                added += 1;
            }
            if added == 0 {
                return Err(config("the CA PEM holds no CERTIFICATE block"));
            }
        }
        if roots.is_empty() {
            return Err(config(
                "no trusted root certificates: the system has none; give the endpoint's CA (ca_pem)",
            ));
        }
        Ok(roots)
    }
}

fn config(message: &str) -> Error {
    Error::new(ErrorKind::Config, message)
}
