//! The TURN side of GetIceServerConfig: time-limited TURN REST API credentials
//! (draft-uberti-rtcweb-turn-rest, the scheme AWS documents for these entries) and, by default,
//! an embedded TURN server (RFC 5766 over UDP) that checks them.
//!
//! The server is the webrtc-rs `turn` crate (a port of Pion TURN). Only the credential check is
//! ours: the crate's `LongTermAuthHandler` wants a bare timestamp as the username, while the TURN
//! REST scheme, coturn and AWS use `<expiry>:<user>`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use turn::auth::{generate_auth_key, AuthHandler};
use turn::relay::relay_static::RelayAddressGeneratorStatic;
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;

use crate::config::TurnMode;
use crate::error::{Error, ErrorKind};

/// The realm the embedded server announces.
const REALM: &str = "kvs-emulator";

/// The placeholder entry's URIs: valid syntax, nothing listening.
const PLACEHOLDER_URIS: [&str; 2] = [
    "turn:127.0.0.1:3478?transport=udp",
    "turns:127.0.0.1:5349?transport=tcp",
];

/// `(username, password)` valid until `expiry`: `<expiry>:<user>` and
/// `base64(HMAC-SHA1(secret, username))`.
pub(crate) fn rest_credentials(secret: &str, user: &str, expiry: SystemTime) -> (String, String) {
    let expiry = expiry
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let username = format!("{expiry}:{user}");
    let password = password_for(secret, &username);
    (username, password)
}

fn password_for(secret: &str, username: &str) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The embedded server's credential check: the username's expiry must be in the future and the
/// password is derived from it, so nothing is stored per client.
struct RestAuth {
    secret: String,
}

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let expiry = username
            .split_once(':')
            .and_then(|(t, _)| t.parse::<u64>().ok())
            .ok_or_else(|| {
                turn::Error::Other(format!("username {username} is not <expiry>:<user>"))
            })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(u64::MAX);
        if expiry <= now {
            tracing::info!(%src_addr, username, "TURN credentials expired");
            return Err(turn::Error::Other(format!(
                "TURN credentials for {username} expired"
            )));
        }
        Ok(generate_auth_key(
            username,
            realm,
            &password_for(&self.secret, username),
        ))
    }
}

/// What GetIceServerConfig points clients at.
pub(crate) struct TurnService {
    uris: Vec<String>,
    secret: String,
    server: Option<Arc<Server>>,
}

impl TurnService {
    /// Start the embedded server if the mode asks for one; it closes when `shutdown` fires.
    pub(crate) async fn start(
        mode: &TurnMode,
        bind: IpAddr,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        match mode {
            TurnMode::Placeholder => Ok(Self {
                uris: PLACEHOLDER_URIS.iter().map(|u| (*u).to_owned()).collect(),
                secret: uuid::Uuid::new_v4().simple().to_string(),
                server: None,
            }),
            TurnMode::External {
                uris,
                shared_secret,
            } => {
                if uris.is_empty() || uris.len() > 4 {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "an external TURN server needs 1 to 4 URIs (AWS returns at most 4 per entry), got {}",
                            uris.len()
                        ),
                    ));
                }
                if let Some(bad) = uris
                    .iter()
                    .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
                {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("TURN URI {bad} must start with turn: or turns:"),
                    ));
                }
                Ok(Self {
                    uris: uris.clone(),
                    secret: shared_secret.clone(),
                    server: None,
                })
            }
            TurnMode::Embedded { port } => {
                let addr = SocketAddr::new(bind, *port);
                let socket = UdpSocket::bind(addr).await.map_err(|e| {
                    Error::io(
                        ErrorKind::Listen,
                        format!("cannot listen for TURN on udp {addr}"),
                        e,
                    )
                })?;
                crate::udp_buffers::enlarge_receive_buffer(&socket);
                let local = socket
                    .local_addr()
                    .map_err(|e| Error::io(ErrorKind::Listen, "TURN socket has no address", e))?;
                let secret = uuid::Uuid::new_v4().simple().to_string();
                let server = Server::new(ServerConfig {
                    conn_configs: vec![ConnConfig {
                        conn: Arc::new(socket),
                        relay_addr_generator: Box::new(RelayAddressGeneratorStatic {
                            relay_address: bind,
                            address: bind.to_string(),
                            net: Arc::new(webrtc_util::vnet::net::Net::new(None)),
                        }),
                    }],
                    realm: REALM.to_owned(),
                    auth_handler: Arc::new(RestAuth {
                        secret: secret.clone(),
                    }),
                    channel_bind_timeout: Duration::ZERO,
                    alloc_close_notify: None,
                })
                .await
                .map_err(|e| {
                    Error::with_source(ErrorKind::Listen, "cannot start the TURN server", e)
                })?;
                let server = Arc::new(server);
                let closing = server.clone();
                tokio::spawn(async move {
                    shutdown.cancelled().await;
                    if let Err(e) = closing.close().await {
                        tracing::debug!(error = %e, "TURN server close");
                    }
                });
                tracing::info!(%local, "TURN server listening (udp)");
                Ok(Self {
                    uris: vec![format!("turn:{local}?transport=udp")],
                    secret,
                    server: Some(server),
                })
            }
        }
    }

    /// The URIs handed out.
    pub(crate) fn uris(&self) -> &[String] {
        &self.uris
    }

    /// One `IceServerList` entry, valid for `ttl` from `now`.
    pub(crate) fn ice_server(&self, user: &str, now: SystemTime, ttl: Duration) -> Value {
        let (username, password) = rest_credentials(&self.secret, user, now + ttl);
        json!({
            "Uris": self.uris,
            "Username": username,
            "Password": password,
            "Ttl": ttl.as_secs(),
        })
    }

    /// The embedded server's allocations, for the inspection API (empty for other modes).
    pub(crate) async fn allocations(&self) -> Value {
        let Some(server) = &self.server else {
            return json!({ "embedded": false, "allocations": [] });
        };
        let allocations: Vec<Value> = match server.get_allocations_info(None).await {
            Ok(all) => all
                .values()
                .map(|a| {
                    json!({
                        "username": a.username,
                        "client": a.five_tuple.src_addr.to_string(),
                        "relayAddress": a.relay_addr.to_string(),
                        "relayedBytes": a.relayed_bytes,
                    })
                })
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "TURN allocations unavailable");
                Vec::new()
            }
        };
        json!({ "embedded": true, "uris": self.uris, "allocations": allocations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        // RFC 2202 test case 2 pins HMAC-SHA1; the TURN REST password is its base64.
        let (username, password) = rest_credentials(
            "Jefe",
            "what do ya want for nothing?",
            UNIX_EPOCH + Duration::from_secs(0),
        );
        assert_eq!(username, "0:what do ya want for nothing?");
        let expected = hex::decode("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79").unwrap();
        assert_eq!(
            password_for("Jefe", "what do ya want for nothing?"),
            base64::engine::general_purpose::STANDARD.encode(expected)
        );
        assert_eq!(password, password_for("Jefe", &username));
    }

    #[tokio::test]
    async fn an_external_server_needs_one_to_four_turn_uris() {
        let bind = IpAddr::from([127, 0, 0, 1]);
        let external = |uris: &[&str]| TurnMode::External {
            uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            shared_secret: "s".into(),
        };
        for (uris, expected) in [
            (&[][..], "1 to 4 URIs"),
            (
                &["turn:a:1", "turn:b:1", "turn:c:1", "turn:d:1", "turn:e:1"][..],
                "got 5",
            ),
            (&["stun:a:3478"][..], "must start with turn: or turns:"),
        ] {
            let err = TurnService::start(&external(uris), bind, CancellationToken::new())
                .await
                .err()
                .unwrap_or_else(|| panic!("{uris:?} accepted"));
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.to_string().contains(expected), "{err}");
        }
        let ok = TurnService::start(
            &external(&["turns:t:443?transport=tcp"]),
            bind,
            CancellationToken::new(),
        )
        .await
        .expect("one turns: URI");
        assert_eq!(ok.uris(), ["turns:t:443?transport=tcp"]);
    }

    #[test]
    fn the_server_accepts_live_usernames_only() {
        let auth = RestAuth {
            secret: "s3cret".into(),
        };
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let (live, password) = rest_credentials(
            "s3cret",
            "cam",
            SystemTime::now() + Duration::from_secs(300),
        );
        assert_eq!(
            auth.auth_handle(&live, REALM, peer).unwrap(),
            generate_auth_key(&live, REALM, &password)
        );
        let (expired, _) =
            rest_credentials("s3cret", "cam", SystemTime::now() - Duration::from_secs(1));
        assert!(auth.auth_handle(&expired, REALM, peer).is_err());
        assert!(auth.auth_handle("cam", REALM, peer).is_err());
    }
}
