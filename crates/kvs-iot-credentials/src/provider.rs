//! [`IotCredentialsProvider`]: the settings, the cache and the `ProvideCredentials`
//! implementation.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{self, error::CredentialsError, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource, TimeSource};
use tokio::sync::Mutex;

use crate::error::{Error, ErrorKind};
use crate::fetch::{self, Endpoint, Fetched, Request};
use crate::identity::IdentityPem;
use crate::refresh::{Decision, Schedule};

/// The provider name the credentials carry.
const PROVIDER_NAME: &str = "IotCredentialsProvider";
/// How long one exchange with the endpoint may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// AWS credentials from the device certificate, through the AWS IoT credentials endpoint; see
/// the [crate docs](crate). Cheap to clone: clones share the cache.
#[derive(Debug, Clone)]
pub struct IotCredentialsProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    request: Request,
    tls: Arc<rustls::ClientConfig>,
    time: SharedTimeSource,
    /// The cached credentials and their schedule; held across a refresh, so that concurrent
    /// callers wait for that one refresh instead of starting their own.
    cache: Mutex<Option<(Credentials, Schedule)>>,
}

impl IotCredentialsProvider {
    /// Start the settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Credentials: the cached ones while they are good, else fresh ones from the endpoint
    /// (see [`refresh`](crate#caching-and-refresh) for when). The error says what to fix.
    pub async fn credentials(&self) -> Result<Credentials, Error> {
        let mut cache = self.inner.cache.lock().await;
        let now = self.inner.time.now();
        let fallback = match cache.as_ref() {
            None => false,
            Some((credentials, schedule)) => match schedule.decide(now) {
                Decision::UseCached => return Ok(credentials.clone()),
                Decision::Refresh { fallback } => fallback,
            },
        };
        match self.fetch(now).await {
            Ok(fresh) => {
                *cache = Some(fresh.clone());
                Ok(fresh.0)
            }
            Err(e) if fallback => {
                let (credentials, schedule) = cache.as_mut().expect("a fallback is cached");
                schedule.refresh_failed(now);
                tracing::warn!(
                    error = %e,
                    "refreshing the IoT credentials failed; the current ones are used until they expire"
                );
                Ok(credentials.clone())
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self, now: SystemTime) -> Result<(Credentials, Schedule), Error> {
        let request = &self.inner.request;
        let fetched = fetch::fetch(self.inner.tls.clone(), request).await?;
        let Fetched {
            access_key_id,
            secret_access_key,
            session_token,
            expiration,
        } = fetched;
        let received = self.inner.time.now().max(now);
        if expiration <= received {
            return Err(Error::new(
                ErrorKind::ClockSkew,
                format!(
                    "the IoT credentials endpoint handed out credentials that expire at {}, which \
                     is already past by this machine's clock ({}): set the clock (NTP)",
                    aws_smithy_types::DateTime::from(expiration),
                    aws_smithy_types::DateTime::from(received)
                ),
            ));
        }
        tracing::debug!(
            access_key_id = %access_key_id,
            expires = %aws_smithy_types::DateTime::from(expiration),
            role_alias = %request.role_alias,
            "IoT credentials received"
        );
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            Some(session_token),
            Some(expiration),
            PROVIDER_NAME,
        );
        let schedule = Schedule::new(received, expiration, rand::random::<f64>());
        Ok((credentials, schedule))
    }
}

impl ProvideCredentials for IotCredentialsProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.credentials().await.map_err(|e| match e.kind() {
                ErrorKind::Config => CredentialsError::invalid_configuration(e),
                _ => CredentialsError::provider_error(e),
            })
        })
    }
}

/// Settings of an [`IotCredentialsProvider`]; [`Builder::build`] checks them.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    endpoint: Option<String>,
    role_alias: Option<String>,
    thing_name: Option<String>,
    identity: IdentityPem,
    timeout: Option<Duration>,
    time: Option<SharedTimeSource>,
}

impl Builder {
    /// The account's IoT credentials endpoint: `aws iot describe-endpoint --endpoint-type
    /// iot:CredentialProvider` (`<prefix>.credentials.iot.<region>.amazonaws.com`; a port or
    /// `https://` may be given).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The role alias whose role's credentials are handed out.
    pub fn role_alias(mut self, role_alias: impl Into<String>) -> Self {
        self.role_alias = Some(role_alias.into());
        self
    }

    /// The thing the certificate is attached to (for Kinesis Video devices conventionally the
    /// channel or stream name; IoT policies use `${credentials-iot:ThingName}` to scope what
    /// the device may touch).
    pub fn thing_name(mut self, thing_name: impl Into<String>) -> Self {
        self.thing_name = Some(thing_name.into());
        self
    }

    /// The device certificate (PEM; a chain may follow it).
    pub fn certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.identity.certificate = Some(pem.into());
        self
    }

    /// The device certificate from a PEM file.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the file when it cannot be read.
    pub fn certificate_pem_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let pem = read(path.as_ref(), "device certificate")?;
        Ok(self.certificate_pem(pem))
    }

    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1). Never logged.
    pub fn private_key_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.identity.private_key = Some(pem.into());
        self
    }

    /// The private key from a PEM file.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the file when it cannot be read.
    pub fn private_key_pem_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let pem = read(path.as_ref(), "private key")?;
        Ok(self.private_key_pem(pem))
    }

    /// A CA to trust for the endpoint's certificate besides the system's roots (e.g.
    /// `AmazonRootCA1.pem`, or an emulator's CA). Verification stays on.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.identity.ca = Some(pem.into());
        self
    }

    /// The CA from a PEM file.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the file when it cannot be read.
    pub fn ca_pem_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let pem = read(path.as_ref(), "CA")?;
        Ok(self.ca_pem(pem))
    }

    /// How long one exchange with the endpoint may take (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The clock the expiry is compared with (default: the system's; tests pass their own).
    pub fn time_source(mut self, time: impl TimeSource + 'static) -> Self {
        self.time = Some(SharedTimeSource::new(time));
        self
    }

    /// Check the settings and load the certificate and key.
    ///
    /// # Errors
    /// [`ErrorKind::Config`]: a setting is missing, a PEM cannot be parsed, or the key is not
    /// the certificate's.
    pub fn build(self) -> Result<IotCredentialsProvider, Error> {
        let missing = |what: &str| {
            Error::new(
                ErrorKind::Config,
                format!("no {what}: the IoT credentials provider needs the endpoint, the role alias, the thing name, the certificate and its key"),
            )
        };
        let endpoint = Endpoint::parse(&self.endpoint.ok_or_else(|| missing("endpoint"))?)?;
        let role_alias =
            nonempty(self.role_alias, "role alias").map_err(|_| missing("role alias"))?;
        let thing_name =
            nonempty(self.thing_name, "thing name").map_err(|_| missing("thing name"))?;
        let tls = self.identity.client_config()?;
        Ok(IotCredentialsProvider {
            inner: Arc::new(Inner {
                request: Request {
                    endpoint,
                    role_alias,
                    thing_name,
                    timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
                },
                tls,
                time: self
                    .time
                    .unwrap_or_else(|| SharedTimeSource::new(SystemTimeSource::new())),
                cache: Mutex::new(None),
            }),
        })
    }
}

fn nonempty(value: Option<String>, what: &str) -> Result<String, Error> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(Error::new(ErrorKind::Config, format!("no {what}"))),
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("cannot read the {what} {}: {e}", path.display()),
        )
        .with_source(e)
    })
}
