//! Talking to the emulator below the SDKs: SigV4 presigning and header signing with
//! `aws-sigv4` (an implementation independent of the emulator's own) and signaling WebSocket
//! frames, for the tests of the emulator's wire behaviour. Raw HTTPS requests are
//! `Service::http_raw` (in the emulator module).

use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use kvs_emulator::AccessKey;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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
