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
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::UnixTime;
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
    /// The CA private key, PEM: it issues device certificates.
    ca_key_pem: String,
    pub(crate) acceptor: TlsAcceptor,
    /// The IoT credentials endpoint's: asks for a client certificate (see [`AnyClientCertificate`]).
    pub(crate) device_acceptor: TlsAcceptor,
    /// Checks a device certificate against the CA (chain and validity), after the handshake.
    pub(crate) device_verifier: Arc<dyn ClientCertVerifier>,
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
    let (cert_path, key_path) = ensure_generated_ca(dir)?;
    provided_ca(&cert_path, &key_path, server_ips)
}

/// The CA in `dir` (`ca.pem`, `ca.key`), created if absent; returns the two paths.
pub(crate) fn ensure_generated_ca(dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
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
    Ok((cert_path, key_path))
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
    let ca_key_pem = read(key_path)?;
    let ca_key =
        KeyPair::from_pem(&ca_key_pem).map_err(tls_err("CA private key (expected PEM PKCS#8)"))?;
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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(tls_err("server identity"))?;
    let device_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?
        .with_client_cert_verifier(Arc::new(AnyClientCertificate {
            provider: provider.clone(),
        }))
        .with_single_cert(chain, key)
        .map_err(tls_err("server identity"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pem_to_der(&ca_cert_pem)?)
        .map_err(tls_err("CA as a trust anchor"))?;
    let device_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(tls_err("device certificate verifier"))?;
    Ok(TlsMaterial {
        ca_cert_path: cert_path.to_path_buf(),
        ca_cert_pem,
        ca_key_pem,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        device_acceptor: TlsAcceptor::from(Arc::new(device_config)),
        device_verifier,
    })
}

impl TlsMaterial {
    /// A device certificate for `thing`, issued by the CA (see [`issue_device_certificate`]).
    pub(crate) fn issue_device_certificate(&self, thing: &str) -> Result<(String, String), Error> {
        issue_device_certificate(&self.ca_cert_pem, &self.ca_key_pem, thing, DEVICE_VALIDITY)
    }
}

/// Validity of the device certificates the emulator issues: (not before, not after) as
/// (year, month, day), within the CA's.
pub(crate) const DEVICE_VALIDITY: ((i32, u8, u8), (i32, u8, u8)) = ((2024, 1, 1), (2035, 1, 1));

/// A device identity, as AWS IoT's `create-keys-and-certificate` gives: a certificate (PEM) for
/// a fresh key (PEM, PKCS#8), issued by the CA. The thing the certificate is attached to is its
/// subject's common name: the IoT credentials endpoint reads it from the certificate, so no
/// state is shared between `kvs-emulator cert issue` and a running emulator.
pub(crate) fn issue_device_certificate(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    thing: &str,
    validity: ((i32, u8, u8), (i32, u8, u8)),
) -> Result<(String, String), Error> {
    if thing.is_empty()
        || thing.len() > 128
        || !thing
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-:".contains(&b))
    {
        return Err(Error::new(
            ErrorKind::Config,
            format!("{thing:?} is not a thing name (1-128 of a-z A-Z 0-9 _ - :)"),
        ));
    }
    let ca_key =
        KeyPair::from_pem(ca_key_pem).map_err(tls_err("CA private key (expected PEM PKCS#8)"))?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(tls_err("CA certificate"))?;
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(tls_err("device parameters"))?;
    params.distinguished_name.push(DnType::CommonName, thing);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "kvs-emulator device");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let ((y0, m0, d0), (y1, m1, d1)) = validity;
    params.not_before = rcgen::date_time_ymd(y0, m0, d0);
    params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    let key = KeyPair::generate().map_err(tls_err("device key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(tls_err("device certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The thing a device certificate issued by [`issue_device_certificate`] is attached to: its
/// subject's common name. `None` for a certificate that does not parse or has none.
pub(crate) fn device_thing(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let mut names = parsed.subject().iter_common_name();
    let name = names.next()?.as_str().ok()?.to_owned();
    names.next().is_none().then_some(name)
}

/// The IoT credentials endpoint's handshake: asks for a client certificate and checks that the
/// client holds its key (the handshake signature), but takes any certificate, so that a
/// certificate the endpoint does not know is answered at HTTP level (403), as AWS answers,
/// rather than by a TLS alert. The certificate itself is checked per request against the CA
/// (`TlsMaterial::device_verifier`).
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>, Error> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::new(ErrorKind::Tls, format!("CA certificate is not PEM: {e}")))
}

pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
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
