//! Which `Host` values the emulator answers (issue #27 item 5): its own addresses and names
//! only. A web page on a name that an attacker re-points at 127.0.0.1 (DNS rebinding) reaches
//! the emulator with that name in `Host`; refusing it keeps such a page from using the
//! emulator, with `--plain-http` too, where TLS would not have stopped it.
//!
//! Answered: `localhost`, any loopback address (`127.0.0.0/8`, `::1`), the addresses the
//! listeners are bound to (any address when bound to `0.0.0.0` or `::`), and the names given to
//! [`AllowedHosts::new`]; with any port. A request without `Host` (HTTP/1.0) is answered:
//! browsers always send one.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::StatusCode;
use http_body_util::Full;

use crate::http_server::HttpResponse;

/// The `Host` values one emulator answers; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    addresses: Vec<IpAddr>,
    any_address: bool,
    names: Vec<String>,
}

impl AllowedHosts {
    /// The emulator bound to `addresses` and also known as `names`.
    pub(crate) fn new(addresses: &[IpAddr], names: &[String]) -> Self {
        Self {
            addresses: addresses.to_vec(),
            any_address: addresses.iter().any(IpAddr::is_unspecified),
            names: names
                .iter()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `host` (a `Host` header value: a name or address, maybe with a port) is one of
    /// the emulator's own.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let host = strip_port(host.trim());
        if let Some(ip) = parse_ip(host) {
            return ip.is_loopback() || self.any_address || self.addresses.contains(&ip);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost" || self.names.contains(&name)
    }

    /// The 421 answer for a request whose `Host` (or absolute-form target) is not the
    /// emulator's, or `None` to serve it.
    pub(crate) fn refusal<B>(&self, req: &http::Request<B>) -> Option<HttpResponse> {
        let header = match req.headers().get(HOST).map(HeaderValue::to_str) {
            None => None,
            Some(Ok(host)) => Some(host),
            Some(Err(_)) => return Some(misdirected("(not text)")),
        };
        let target = req.uri().authority().map(|a| a.as_str());
        for host in header.into_iter().chain(target) {
            if !self.allows(host) {
                tracing::info!(host = %shown(host), "request for another host refused");
                return Some(misdirected(host));
            }
        }
        None
    }
}

/// `host` without a trailing `:port` (`[::1]:443` → `[::1]`, `a:443` → `a`).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        // One colon: name:port. More: an IPv6 address without brackets.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// At most 100 characters of a client-chosen value, for logs and answers.
fn shown(value: &str) -> String {
    let mut shown: String = value.chars().take(100).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    shown
}

fn misdirected(host: &str) -> HttpResponse {
    let text = format!(
        "kvs-emulator answers its own addresses and names only (localhost, loopback addresses, \
         the addresses it listens on); Host {} is not one of them\n",
        shown(host)
    );
    let mut resp = crate::http_server::full_response(Full::new(Bytes::from(text)));
    *resp.status_mut() = StatusCode::MISDIRECTED_REQUEST;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_and_names_are_answered_with_any_port() {
        let hosts = AllowedHosts::new(
            &["127.0.0.1".parse().unwrap(), "10.1.2.3".parse().unwrap()],
            &["kvs.test".to_owned()],
        );
        for host in [
            "127.0.0.1:443",
            "127.0.0.3",
            "127.9.9.9:1",
            "localhost",
            "LOCALHOST:8443",
            "localhost.",
            "[::1]:443",
            "[::1]",
            "::1",
            "10.1.2.3:80",
            "kvs.test",
            "Kvs.Test:443",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:443",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.1.2.4",
            "[fe80::1]:443",
            "",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn bound_to_every_address_any_address_is_answered_but_no_other_name() {
        let hosts = AllowedHosts::new(&["0.0.0.0".parse().unwrap()], &[]);
        assert!(hosts.allows("192.168.1.20:443"));
        assert!(!hosts.allows("rebound.example:443"));
    }

    #[test]
    fn a_foreign_host_or_target_is_refused_with_421() {
        let hosts = AllowedHosts::new(&["127.0.0.1".parse().unwrap()], &[]);
        let request = |host: Option<&str>, uri: &str| {
            let mut builder = http::Request::builder().uri(uri);
            if let Some(host) = host {
                builder = builder.header(HOST, host);
            }
            builder.body(()).unwrap()
        };
        assert!(hosts
            .refusal(&request(Some("127.0.0.1:4443"), "/"))
            .is_none());
        assert!(hosts.refusal(&request(None, "/")).is_none(), "HTTP/1.0");
        let refused = hosts
            .refusal(&request(Some("evil.example:4443"), "/"))
            .expect("refused");
        assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST);
        assert!(hosts
            .refusal(&request(Some("127.0.0.1"), "http://evil.example/x"))
            .is_some());
    }
}
