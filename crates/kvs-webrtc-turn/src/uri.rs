//! TURN URIs (RFC 7065) as GetIceServerConfig returns them: `turn:HOST:PORT?transport=udp`,
//! `turns:HOST:PORT?transport=tcp`, `turns:HOST:PORT?transport=udp`.

use std::fmt;

use crate::error::UriError;

/// How the client reaches the TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayTransport {
    /// STUN and ChannelData in UDP datagrams (`turn:…?transport=udp`).
    Udp,
    /// Over a TCP connection, framed as RFC 6062 describes (`turn:…?transport=tcp`).
    Tcp,
    /// Over TLS on a TCP connection (`turns:…?transport=tcp`); the server's certificate is
    /// verified against the host name of the URI.
    Tls,
}

impl fmt::Display for RelayTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        })
    }
}

/// A parsed `turn:` or `turns:` URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TurnUri {
    secure: bool,
    host: String,
    port: u16,
    tcp: bool,
}

impl TurnUri {
    /// Parse a URI. The port defaults to 3478 (`turn:`) or 5349 (`turns:`) and the transport
    /// to UDP (`turn:`) or TCP (`turns:`), as RFC 7065 says.
    ///
    /// # Errors
    /// [`UriError`] naming what is wrong: another scheme, no host, a bad port, an unknown
    /// transport.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let bad = |why: &str| UriError::new(uri, why);
        let (secure, rest) = if let Some(rest) = uri.strip_prefix("turns:") {
            (true, rest)
        } else if let Some(rest) = uri.strip_prefix("turn:") {
            (false, rest)
        } else {
            return Err(bad("it does not start with turn: or turns:"));
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut tcp = secure;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("transport", "udp")) => tcp = false,
                Some(("transport", "tcp")) => tcp = true,
                Some(("transport", other)) => {
                    return Err(bad(&format!("transport {other:?} is neither udp nor tcp")))
                }
                _ => return Err(bad(&format!("unknown query parameter {pair:?}"))),
            }
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address misses its ]"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        let port = match port {
            None => {
                if secure {
                    5349
                } else {
                    3478
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad(&format!("port {p:?} is not a number from 1 to 65535"))),
            },
        };
        Ok(Self {
            secure,
            host: host.to_owned(),
            port,
            tcp,
        })
    }

    /// The host (a name or an IP address, without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URI is `turns:`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// How to reach the server, or `None` for `turns:…?transport=udp` (TURN over DTLS), which
    /// this client does not speak, like the KVS C SDK (it skips these URIs).
    pub fn relay_transport(&self) -> Option<RelayTransport> {
        match (self.secure, self.tcp) {
            (false, false) => Some(RelayTransport::Udp),
            (false, true) => Some(RelayTransport::Tcp),
            (true, true) => Some(RelayTransport::Tls),
            (true, false) => None,
        }
    }

    /// `host:port`, bracketed for IPv6, for DNS resolution.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for TurnUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "turns" } else { "turn" };
        let transport = if self.tcp { "tcp" } else { "udp" };
        write!(f, "{scheme}:{}?transport={transport}", self.host_port())
    }
}

impl std::str::FromStr for TurnUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_kvs_forms_parse_to_their_transports() {
        let cases = [
            (
                "turn:1-2-3-4.t-1.kinesisvideo.us-west-2.amazonaws.com:443?transport=udp",
                Some(RelayTransport::Udp),
            ),
            (
                "turns:1-2-3-4.t-1.kinesisvideo.us-west-2.amazonaws.com:443?transport=udp",
                None,
            ),
            (
                "turns:1-2-3-4.t-1.kinesisvideo.us-west-2.amazonaws.com:443?transport=tcp",
                Some(RelayTransport::Tls),
            ),
            (
                "turn:127.0.0.1:3478?transport=tcp",
                Some(RelayTransport::Tcp),
            ),
        ];
        for (uri, transport) in cases {
            let parsed = TurnUri::parse(uri).unwrap();
            assert_eq!(parsed.relay_transport(), transport, "{uri}");
            assert_eq!(parsed.to_string(), uri, "round trip");
        }
        let kvs = TurnUri::parse(cases[0].0).unwrap();
        assert_eq!(kvs.port(), 443);
        assert_eq!(
            kvs.host(),
            "1-2-3-4.t-1.kinesisvideo.us-west-2.amazonaws.com"
        );
    }

    #[test]
    fn defaults_follow_rfc_7065() {
        let plain = TurnUri::parse("turn:example.com").unwrap();
        assert_eq!(
            (plain.port(), plain.relay_transport()),
            (3478, Some(RelayTransport::Udp))
        );
        let secure = TurnUri::parse("turns:example.com").unwrap();
        assert_eq!(
            (secure.port(), secure.relay_transport()),
            (5349, Some(RelayTransport::Tls))
        );
        let v6 = TurnUri::parse("turn:[::1]:3479?transport=tcp").unwrap();
        assert_eq!((v6.host(), v6.host_port().as_str()), ("::1", "[::1]:3479"));
    }

    #[test]
    fn bad_uris_are_refused_with_the_reason() {
        for (uri, why) in [
            (
                "stun:example.com:3478",
                "does not start with turn: or turns:",
            ),
            ("turn::3478", "no host"),
            ("turn:example.com:0", "port \"0\""),
            ("turn:example.com:99999", "port \"99999\""),
            ("turn:example.com:x", "port \"x\""),
            (
                "turn:example.com?transport=sctp",
                "\"sctp\" is neither udp nor tcp",
            ),
            ("turn:example.com?foo=bar", "unknown query parameter"),
            ("turn:[::1:3478", "misses its ]"),
        ] {
            let err = TurnUri::parse(uri).unwrap_err().to_string();
            assert!(err.contains(why), "{uri}: {err}");
            assert!(err.contains(uri), "the message names the URI: {err}");
        }
    }
}
