//! Talking to the emulator below the SDKs: SigV4 presigning and header signing with
//! `aws-sigv4` (an implementation independent of the emulator's own), raw HTTPS requests, and
//! signaling WebSocket frames. For the tests of the emulator's wire behaviour.

use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use kvs_emulator::AccessKey;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::emulator::Service;
use crate::wait::WAIT;

/// A signaling WebSocket, as the emulator's WSS endpoint serves it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A SigV4 presigned WSS URL, made by `aws-sigv4` (an implementation independent of the emulator).
pub fn presign(
    wss: &str,
    channel_arn: &str,
    client_id: Option<&str>,
    key: &AccessKey,
    region: &str,
    time: SystemTime,
    expires: Duration,
) -> String {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    let mut url = format!("{wss}/?X-Amz-ChannelARN={}", urlencode(channel_arn));
    if let Some(id) = client_id {
        url.push_str(&format!("&X-Amz-ClientId={}", urlencode(id)));
    }
    let host = wss
        .trim_start_matches("wss://")
        .trim_start_matches("ws://")
        .to_owned();
    let identity = key.credentials().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kinesisvideo")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        "GET",
        &url,
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(b""),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .expect("request");
    instructions.apply_to_request_http1x(&mut request);
    request.uri().to_string()
}

/// The headers of a SigV4-signed (header signature) POST of `body` to `url`, signed with
/// `aws-sigv4` for service `kinesisvideo`: for requests the SDKs would refuse to build (members
/// of the wrong JSON type).
pub fn signed_headers(
    url: &str,
    body: &[u8],
    key: &AccessKey,
    region: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let host = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let identity = key.credentials().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kinesisvideo")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
    ];
    let signable =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
            .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(url)
        .body(())
        .expect("request");
    instructions.apply_to_request_http1x(&mut request);
    request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

/// Percent-encoding as SigV4 wants it (RFC 3986 unreserved characters kept).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A minimal HTTPS/1.1 request (Connection: close) to the inspection API.
pub(crate) async fn http_json(
    emu: &Service,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (_, text) = http_raw(emu, method, url, body.as_bytes()).await;
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("inspection answer is JSON: {text}"))
}

/// One HTTP/1.1 request over TLS, unsigned: the status code and the body.
pub async fn http_raw(emu: &Service, method: &str, url: &str, body: &[u8]) -> (u16, String) {
    let (status, _, body) = http_raw_with(emu, method, url, &[], body).await;
    (status, body)
}

/// [`http_raw`] with extra request headers; also returns the response headers (lower-cased
/// names).
pub async fn http_raw_with(
    emu: &Service,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("https://").expect("TLS endpoint");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let tcp = TcpStream::connect(authority)
        .await
        .expect("connect to the emulator");
    let connector = tokio_rustls::TlsConnector::from(emu.rustls_client_config());
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    // JSON unless the caller gives a Content-Type of its own.
    let content_type = if headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{content_type}Content-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("write request");
    // The server may answer (and close) before reading a body it refuses.
    let _ = tls.write_all(body).await;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The next text frame as JSON, within [`WAIT`].
pub async fn next_json(ws: &mut Ws) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame arrives in time");
        match frame {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text).expect("JSON frame")
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Wait until the socket is closed by the server; returns the close reason.
pub async fn closed(ws: &mut Ws) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("socket closes in time")
        {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| f.reason.to_string()).unwrap_or_default()
            }
            None | Some(Err(_)) => return String::new(),
            Some(Ok(_)) => continue,
        }
    }
}

/// Send `value` as a text frame.
pub async fn send_json(ws: &mut Ws, value: &Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send frame");
}

/// The JSON inside a signaling message's base64 `messagePayload`.
pub fn decode_payload(event: &Value) -> Value {
    use base64::Engine as _;
    let b64 = event["messagePayload"].as_str().expect("messagePayload");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// `value` as a base64 `messagePayload`.
pub fn encode_payload(value: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}
