//! A throw-away CA and a server certificate for loopback.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA, and a server certificate it signed for `127.0.0.1`, `::1` and `localhost`.
#[derive(Debug)]
pub struct TestCa {
    /// The CA certificate (PEM): what a client trusts.
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server's private key (PEM, PKCS#8).
    pub server_key_pem: String,
    /// What signs client certificates.
    ca_params: CertificateParams,
    ca_key_pem: String,
}

impl TestCa {
    /// Generate a new CA and server certificate.
    ///
    /// # Panics
    /// If key generation fails (a broken crypto provider): a test harness may.
    pub fn new(name: &str) -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let ca_pem = ca_cert.pem();
        let ca_key_pem = ca_key.serialize_pem();
        let ca_params = ca.clone();
        let issuer = Issuer::new(ca, ca_key);

        let mut server =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server parameters");
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        server.distinguished_name.push(DnType::CommonName, name);
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        Self {
            ca_pem,
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            ca_params,
            ca_key_pem,
        }
    }

    /// A client certificate (mutual TLS) for `common_name`, signed by this CA: its PEM and its
    /// private key's (PKCS#8). `expired`: valid only in 2020.
    ///
    /// # Panics
    /// If key generation fails.
    pub fn client_certificate(&self, common_name: &str, expired: bool) -> (String, String) {
        let key = KeyPair::from_pem(&self.ca_key_pem).expect("the CA key");
        let issuer = Issuer::new(self.ca_params.clone(), key);
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let client_key = KeyPair::generate().expect("client key");
        let cert = params
            .signed_by(&client_key, &issuer)
            .expect("client certificate");
        (cert.pem(), client_key.serialize_pem())
    }
}
