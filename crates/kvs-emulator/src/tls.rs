//! The emulator's TLS: a local CA (generated once and kept, or given by the user) and a server
//! certificate for the loopback names, issued by that CA at every start.
//!
//! Clients trust the CA through their own option (`AWS_CA_BUNDLE`, `--ca-bundle`, a custom trust
//! store); nothing here asks anybody to turn verification off.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, ErrorKind};

/// The CA and the server identity derived from it.
#[derive(Clone)]
pub(crate) struct TlsMaterial {
    /// Where the CA certificate is, for clients to trust.
    pub ca_cert_path: PathBuf,
    /// The CA certificate, PEM.
    pub ca_cert_pem: String,
    pub(crate) acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_cert_path", &self.ca_cert_path)
            .finish_non_exhaustive()
    }
}

/// Load the CA in `dir`, creating it on first use; the server certificate also covers
/// `server_ips` (the listeners' addresses).
pub(crate) fn generated_ca(dir: &Path, server_ips: &[IpAddr]) -> Result<TlsMaterial, Error> {
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca.key");
    if !cert_path.exists() || !key_path.exists() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                ErrorKind::Tls,
                format!("cannot create {}", dir.display()),
                e,
            )
        })?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA parameters"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "kvs-emulator local CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "kvs-emulator");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let key = KeyPair::generate().map_err(tls_err("CA key"))?;
        let cert = params
            .self_signed(&key)
            .map_err(tls_err("CA certificate"))?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, cert.pem()).map_err(|e| {
            Error::io(
                ErrorKind::Tls,
                format!("cannot write {}", cert_path.display()),
                e,
            )
        })?;
        tracing::info!(ca = %cert_path.display(), "generated a new local CA");
    }
    provided_ca(&cert_path, &key_path, server_ips)
}

/// Use a CA the user gives; the server certificate covers `localhost`, 127.0.0.1, ::1 and
/// `server_ips`.
pub(crate) fn provided_ca(
    cert_path: &Path,
    key_path: &Path,
    server_ips: &[IpAddr],
) -> Result<TlsMaterial, Error> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::io(ErrorKind::Tls, format!("cannot read {}", p.display()), e))
    };
    let ca_cert_pem = read(cert_path)?;
    let ca_key = KeyPair::from_pem(&read(key_path)?)
        .map_err(tls_err("CA private key (expected PEM PKCS#8)"))?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).map_err(tls_err("CA certificate"))?;

    let mut params = CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(tls_err("server parameters"))?;
    let mut ips = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    for ip in server_ips {
        if !ip.is_unspecified() && !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    params
        .subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    params
        .distinguished_name
        .push(DnType::CommonName, "kvs-emulator");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let server_key = KeyPair::generate().map_err(tls_err("server key"))?;
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(tls_err("server certificate"))?;

    let chain = vec![server_cert.der().clone(), pem_to_der(&ca_cert_pem)?];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_err("protocol versions"))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(tls_err("server identity"))?;
    Ok(TlsMaterial {
        ca_cert_path: cert_path.to_path_buf(),
        ca_cert_pem,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>, Error> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::new(ErrorKind::Tls, format!("CA certificate is not PEM: {e}")))
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .map_err(|e| {
            Error::io(
                ErrorKind::Tls,
                format!("cannot write {}", path.display()),
                e,
            )
        })
}

fn tls_err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| {
        Error::new(
            ErrorKind::Tls,
            format!("TLS setup failed at the {what}: {e}"),
        )
    }
}
