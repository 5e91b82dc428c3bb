//! The emulator's handling of what clients send: SigV4 in a header and in a presigned query,
//! signaling frames from a client, JSON bodies and `Origin` headers, and whole HTTP requests to
//! each of its listeners.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use arbitrary::{Arbitrary, Unstructured};
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use http::{HeaderMap, HeaderName, HeaderValue};
use kvs_emulator::fuzzing::{SignedRequest, Verifier};
use kvs_emulator::AccessKey;
use serde_json::{Map, Value};

use crate::signaling::Json;

const REGION: &str = "us-west-2";

/// Percent-encoding of everything but RFC 3986's unreserved characters, as the SDKs encode.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request signed by `aws-sigv4` (an implementation independent of the emulator's
/// verifier), in its header or, with `presign`, in the query.
struct Signing<'a> {
    method: &'a str,
    url: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
    key: &'a AccessKey,
    time: SystemTime,
    presign: Option<Duration>,
}

impl Signing<'_> {
    fn sign(&self) -> Option<http::Request<()>> {
        let identity = self.key.credentials().into();
        let mut settings = SigningSettings::default();
        if let Some(expires) = self.presign {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(expires);
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("kinesisvideo")
            .time(self.time)
            .settings(settings)
            .build()
            .ok()?
            .into();
        let body = if self.presign.is_some() {
            SignableBody::Bytes(b"")
        } else {
            SignableBody::Bytes(self.body)
        };
        let signable = SignableRequest::new(
            self.method,
            self.url,
            self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .ok()?;
        let (instructions, _) = sign(signable, &params).ok()?.into_parts();
        let mut request = http::Request::builder()
            .method(self.method)
            .uri(self.url)
            .body(())
            .ok()?;
        for (k, v) in self.headers {
            request.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            );
        }
        instructions.apply_to_request_http1x(&mut request);
        Some(request)
    }
}

/// A part of a request: usually plain, sometimes with characters that need encoding.
#[derive(Debug, Arbitrary)]
enum Part {
    Word(u16),
    Any(String),
}

impl Part {
    fn text(&self) -> String {
        match self {
            Part::Word(n) => format!("w{n}"),
            Part::Any(s) => s.clone(),
        }
    }
}

/// Something done to a signed request after signing, and whether it must then be refused.
#[derive(Debug, Arbitrary)]
enum Tamper {
    /// A character of the signature changed: refused.
    Signature(u8),
    /// A byte of the body changed (header signatures cover the body): refused.
    Body(u16),
    /// Another method: refused.
    Method,
    /// The date one second later: refused.
    Date,
    /// A signed header removed: refused.
    DropSignedHeader(u8),
    /// A header that is not signed added: still accepted.
    AddUnsignedHeader(u8),
    /// The Authorization header (or the query) replaced by anything: no oracle.
    Junk(String),
}

#[derive(Debug, Arbitrary)]
struct SigV4Case {
    post: bool,
    path: Vec<Part>,
    query: Vec<(Part, Part)>,
    headers: Vec<(u8, Part)>,
    body: Vec<u8>,
    token: Option<u16>,
    presign: Option<u32>,
    /// Seconds between signing and verifying (the verifier allows 300 either way).
    skew: i16,
    tamper: Option<Tamper>,
}

const HEADER_NAMES: [&str; 6] = [
    "content-type",
    "x-amz-target",
    "x-amz-user-agent",
    "x-custom",
    "accept",
    "x-amz-meta-thing",
];

/// A request signed by `aws-sigv4`, then maybe tampered with, checked by the emulator's
/// verifier: what aws-sigv4 signed within the clock skew must be accepted, and a tampered
/// signed part refused. Also `decode_query` and `X-Amz-Date` parsing on the raw parts.
pub fn sigv4(data: &[u8]) {
    let _ = sigv4_run(data);
}

/// [`sigv4`], saying whether the verifier accepted the request (`None`: the bytes do not make
/// a signed request).
pub fn sigv4_run(data: &[u8]) -> Option<bool> {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kvs_emulator::fuzzing::decode_query(text);
        if let Some((secs, formatted)) = kvs_emulator::fuzzing::amz_date(text) {
            assert_eq!(
                kvs_emulator::fuzzing::amz_date(&formatted).map(|(s, _)| s),
                Some(secs),
                "{text:?} read as {formatted:?}, which reads otherwise"
            );
        }
    }
    let u = Unstructured::new(data);
    let case = SigV4Case::arbitrary_take_rest(u).ok()?;
    let key = AccessKey {
        access_key_id: "AKIAFUZZ".into(),
        secret_access_key: "fuzz-secret".into(),
        session_token: case.token.map(|t| format!("token{t}")),
    };
    let method = if case.post { "POST" } else { "GET" };
    let path: Vec<String> = case
        .path
        .iter()
        .take(6)
        .map(|p| encode(&p.text()))
        .collect();
    let mut url = format!("https://127.0.0.1:4443/{}", path.join("/"));
    // A presigned request's own parameters named X-Amz-* would be a second copy of the
    // signature's (which one counts is then anyone's guess): the SDKs never send such.
    let query: Vec<String> = case
        .query
        .iter()
        .take(6)
        .map(|(k, v)| (k.text(), v.text()))
        .filter(|(k, _)| case.presign.is_none() || !k.to_ascii_lowercase().starts_with("x-amz-"))
        .map(|(k, v)| format!("{}={}", encode(&k), encode(&v)))
        .collect();
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    let mut headers = vec![("host".to_owned(), "127.0.0.1:4443".to_owned())];
    for (name, value) in case.headers.iter().take(6) {
        let name = HEADER_NAMES[usize::from(*name) % HEADER_NAMES.len()];
        let value = value.text();
        // Only what goes into an HTTP header (visible ASCII and spaces inside).
        if value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let skew = i64::from(case.skew);
    let time = if skew >= 0 {
        now + Duration::from_secs(skew as u64)
    } else {
        now - Duration::from_secs(skew.unsigned_abs())
    };
    let presign = case
        .presign
        .map(|e| Duration::from_secs(1 + u64::from(e) % 604_800));
    let signing = Signing {
        method,
        url: &url,
        headers: &headers,
        body: &case.body,
        key: &key,
        time,
        presign,
    };
    let mut request = signing.sign()?;
    let mut method = method.to_owned();
    let mut body = case.body.clone();
    let mut must_fail = false;
    let mut no_oracle = false;
    let signed_headers: Vec<String> = signed_header_names(&request);
    match &case.tamper {
        None => {}
        Some(Tamper::Signature(i)) => {
            must_fail = tamper_signature(&mut request, usize::from(*i));
        }
        Some(Tamper::Body(i)) if presign.is_none() && !body.is_empty() => {
            let i = usize::from(*i) % body.len();
            body[i] ^= 1;
            must_fail = true;
        }
        // A presigned request does not sign its body.
        Some(Tamper::Body(_)) => {}
        Some(Tamper::Method) => {
            method = if method == "POST" { "PUT" } else { "POST" }.to_owned();
            must_fail = true;
        }
        Some(Tamper::Date) => must_fail = shift_date(&mut request),
        Some(Tamper::DropSignedHeader(i)) => {
            let name = &signed_headers[usize::from(*i) % signed_headers.len().max(1)];
            if presign.is_none() || name != "host" {
                must_fail = request.headers_mut().remove(name.as_str()).is_some();
            }
        }
        Some(Tamper::AddUnsignedHeader(i)) => {
            let name = format!("x-unsigned-{i}");
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_static("1"),
            );
        }
        Some(Tamper::Junk(junk)) => {
            no_oracle = true;
            if presign.is_some() {
                let path = request.uri().path().to_owned();
                if let Ok(uri) = format!(
                    "{path}?{}",
                    encode(junk).replace("%3D", "=").replace("%26", "&")
                )
                .parse()
                {
                    *request.uri_mut() = uri;
                }
            } else if let Ok(v) = HeaderValue::from_str(junk) {
                request.headers_mut().insert(http::header::AUTHORIZATION, v);
            }
        }
    }
    let verifier = Verifier {
        key: &key,
        region: REGION,
        now,
    };
    let received = SignedRequest {
        method: &method,
        path: request.uri().path(),
        query: request.uri().query().unwrap_or(""),
        headers: request.headers(),
        body: &body,
    };
    let verdict = if presign.is_some() {
        verifier.verify_query(&received)
    } else {
        verifier.verify_header(&received)
    };
    if no_oracle {
        return Some(verdict.is_ok());
    }
    let in_time = match presign {
        // Valid from its date (300 s of skew allowed) until date + expires.
        Some(expires) => skew <= 300 && skew + expires.as_secs() as i64 >= 0,
        None => skew.abs() <= 300,
    };
    let expected_ok = in_time && !must_fail;
    // Exactly at the limits, rounding to whole seconds may go either way.
    let at_edge = skew.abs() == 300 || presign.is_some_and(|e| skew + e.as_secs() as i64 == 0);
    if !at_edge {
        assert_eq!(
            verdict.is_ok(),
            expected_ok,
            "{method} {} (skew {skew} s, presign {presign:?}, tamper {:?}): {verdict:?}\n{:?}",
            request.uri(),
            case.tamper,
            request.headers()
        );
    }
    Some(verdict.is_ok())
}

fn signed_header_names(request: &http::Request<()>) -> Vec<String> {
    let from_query = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="))
            .map(|v| v.replace("%3B", ";"))
    });
    let from_header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| {
            a.split(", ")
                .find_map(|p| p.strip_prefix("SignedHeaders="))
                .map(str::to_owned)
        });
    from_query
        .or(from_header)
        .map(|s| s.split(';').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Change one hex digit of the signature; whether there was one.
fn tamper_signature(request: &mut http::Request<()>, i: usize) -> bool {
    let flip = |c: char| if c == '0' { '1' } else { '0' };
    if let Some(auth) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    {
        let Some(at) = auth.find("Signature=") else {
            return false;
        };
        let start = at + "Signature=".len();
        let mut chars: Vec<char> = auth.chars().collect();
        let pos = start + i % (chars.len() - start).max(1);
        if pos < chars.len() {
            chars[pos] = flip(chars[pos]);
        }
        let auth: String = chars.into_iter().collect();
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&auth).expect("ASCII"),
        );
        return true;
    }
    let uri = request.uri().to_string();
    let Some(at) = uri.find("X-Amz-Signature=") else {
        return false;
    };
    let start = at + "X-Amz-Signature=".len();
    let end = uri[start..].find('&').map_or(uri.len(), |e| start + e);
    if end == start {
        return false;
    }
    let pos = start + i % (end - start);
    let mut bytes = uri.into_bytes();
    bytes[pos] = flip(char::from(bytes[pos])) as u8;
    let Ok(uri) = String::from_utf8(bytes).expect("ASCII").parse() else {
        return false;
    };
    *request.uri_mut() = uri;
    true
}

/// Make `X-Amz-Date` one second later (header or query); whether it was found.
fn shift_date(request: &mut http::Request<()>) -> bool {
    let later = |date: &str| -> Option<String> {
        let (secs, _) = kvs_emulator::fuzzing::amz_date(date)?;
        Some(kvs_emulator::fuzzing::format_amz_date(secs + 1))
    };
    if let Some(date) = request
        .headers()
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    {
        let Some(new) = later(&date) else {
            return false;
        };
        request
            .headers_mut()
            .insert("x-amz-date", HeaderValue::from_str(&new).expect("ASCII"));
        return true;
    }
    let uri = request.uri().to_string();
    let Some(at) = uri.find("X-Amz-Date=") else {
        return false;
    };
    let start = at + "X-Amz-Date=".len();
    let Some(new) = uri.get(start..start + 16).and_then(later) else {
        return false;
    };
    let uri = format!("{}{new}{}", &uri[..start], &uri[start + 16..]);
    match uri.parse() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            true
        }
        Err(_) => false,
    }
}

/// A client's signaling frame (built, or the bytes as text) through the emulator's parser.
pub fn client_frame(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_frame(text);
    }
    let u = Unstructured::new(data);
    if let Ok(frame) = ClientFrame::arbitrary_take_rest(u) {
        check_frame(&frame.text());
    }
}

fn check_frame(text: &str) {
    if let Err(Some(status)) = kvs_emulator::fuzzing::client_frame(text) {
        let v: Value = serde_json::from_str(&status).expect("a STATUS_RESPONSE is JSON");
        assert_eq!(v["messageType"], "STATUS_RESPONSE");
    }
}

#[derive(Debug, Arbitrary)]
struct ClientFrame {
    action: u8,
    payload: Option<ClientPayload>,
    recipient: Option<String>,
    correlation_id: Option<Part>,
    upper_case_keys: bool,
    extra: Vec<(String, Json)>,
}

#[derive(Debug, Arbitrary)]
enum ClientPayload {
    Json(Json),
    Text(String),
}

impl ClientFrame {
    fn text(&self) -> String {
        use base64::Engine as _;
        let key = |k: &str| {
            if self.upper_case_keys {
                let mut c = k.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            } else {
                k.to_owned()
            }
        };
        let mut obj: Map<String, Value> = self
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.value()))
            .collect();
        let actions = ["SDP_OFFER", "SDP_ANSWER", "ICE_CANDIDATE", "GO_AWAY", ""];
        obj.insert(
            key("action"),
            Value::from(actions[usize::from(self.action) % actions.len()]),
        );
        match &self.payload {
            Some(ClientPayload::Json(j)) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(j.value().to_string());
                obj.insert(key("messagePayload"), Value::from(b64));
            }
            Some(ClientPayload::Text(t)) => {
                obj.insert(key("messagePayload"), Value::from(t.clone()));
            }
            None => {}
        }
        if let Some(r) = &self.recipient {
            obj.insert(key("recipientClientId"), Value::from(r.clone()));
        }
        if let Some(c) = &self.correlation_id {
            obj.insert(key("correlationId"), Value::from(c.text()));
        }
        Value::Object(obj).to_string()
    }
}

/// A request body through `json_body`, and the bytes as an `Origin` header through the
/// inspection API's check: a page of a loopback origin only.
pub fn request_parts(data: &[u8]) {
    let _ = kvs_emulator::fuzzing::json_body(data);
    if let Ok(origin) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ORIGIN, origin);
        if kvs_emulator::fuzzing::origin_allowed(&headers) {
            let text = String::from_utf8_lossy(data);
            let host = text
                .strip_prefix("http://")
                .or_else(|| text.strip_prefix("https://"))
                .unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            assert!(
                text == "null"
                    || host == "localhost"
                    || host == "[::1]"
                    || host.starts_with("127."),
                "the inspection API let in a page of {text:?}"
            );
        }
    }
}

// ----- whole HTTP requests to a running emulator -----

/// An emulator serving plain HTTP on loopback for the whole fuzzing process, and its key.
struct Running {
    /// Control plane, channel HTTPS, channel WSS, channel WEBRTC.
    listeners: [SocketAddr; 4],
    key: AccessKey,
    _runtime: tokio::runtime::Runtime,
    _handle: kvs_emulator::EmulatorHandle,
}

fn running() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let key = AccessKey::new("AKIAFUZZ", "fuzz-secret");
        let handle = runtime
            .block_on(
                kvs_emulator::Emulator::builder()
                    .tls(kvs_emulator::TlsMode::Plain)
                    .temporary()
                    .turn(kvs_emulator::TurnMode::Placeholder)
                    .throttling(kvs_emulator::Throttling::disabled())
                    .access_key(key.clone())
                    .start(),
            )
            .expect("the emulator starts");
        let e = handle.endpoints();
        let addr = |url: &str| -> SocketAddr {
            url.rsplit("://")
                .next()
                .and_then(|a| a.parse().ok())
                .expect("a loopback address")
        };
        Running {
            listeners: [
                addr(&e.control_plane),
                addr(&e.https),
                addr(&e.wss),
                addr(&e.webrtc),
            ],
            key,
            _runtime: runtime,
            _handle: handle,
        }
    })
}

const OPERATIONS: [&str; 12] = [
    "/createSignalingChannel",
    "/describeSignalingChannel",
    "/deleteSignalingChannel",
    "/createStream",
    "/describeStream",
    "/updateMediaStorageConfiguration",
    "/describeMediaStorageConfiguration",
    "/getSignalingChannelEndpoint",
    "/v1/get-ice-server-config",
    "/joinStorageSession",
    "/joinStorageSessionAsViewer",
    "/_emulator/v1/faults",
];

const FIELDS: [&str; 14] = [
    "ChannelName",
    "ChannelARN",
    "ChannelType",
    "StreamName",
    "StreamARN",
    "SingleMasterConfiguration",
    "MediaStorageConfiguration",
    "SingleMasterChannelEndpointConfiguration",
    "ClientId",
    "Service",
    "Username",
    "channelArn",
    "clientId",
    "fault",
];

#[derive(Debug, Arbitrary)]
enum FieldValue {
    /// One of a few channel names, so that later requests find what earlier ones made.
    Name(u8),
    /// An ARN of one of those names.
    Arn(u8),
    Json(Json),
}

impl FieldValue {
    fn value(&self) -> Value {
        match self {
            FieldValue::Name(n) => Value::from(format!("fuzz-{}", n % 4)),
            FieldValue::Arn(n) => Value::from(format!(
                "arn:aws:kinesisvideo:us-west-2:111122223333:channel/fuzz-{}/1700000000000",
                n % 4
            )),
            FieldValue::Json(j) => j.value(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum HttpRequest {
    /// An operation with a JSON body, signed unless `unsigned`.
    Api {
        listener: u8,
        operation: u8,
        fields: Vec<(u8, FieldValue)>,
        unsigned: bool,
        origin: Option<String>,
        options: bool,
    },
    /// Bytes as they are, to one listener.
    Raw { listener: u8, bytes: Vec<u8> },
}

/// Read the answer within this; the emulator answers any request (or closes) at once.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request to one of the emulator's listeners, over a real socket; the answer is
/// read to the end. The emulator must answer (or close) at once and stay up.
pub fn http(data: &[u8]) {
    let u = Unstructured::new(data);
    let Ok(request) = HttpRequest::arbitrary_take_rest(u) else {
        return;
    };
    let running = running();
    let (listener, bytes) = match &request {
        HttpRequest::Raw { listener, bytes } => (*listener, bytes.clone()),
        HttpRequest::Api {
            listener,
            operation,
            fields,
            unsigned,
            origin,
            options,
        } => {
            let path = OPERATIONS[usize::from(*operation) % OPERATIONS.len()];
            let body: Map<String, Value> = fields
                .iter()
                .take(8)
                .map(|(f, v)| (FIELDS[usize::from(*f) % FIELDS.len()].to_owned(), v.value()))
                .collect();
            let body = Value::Object(body).to_string();
            let address = running.listeners[usize::from(*listener) % 4];
            let host = address.to_string();
            let mut headers = vec![
                ("host".to_owned(), host.clone()),
                ("content-type".to_owned(), "application/json".to_owned()),
            ];
            if let Some(o) = origin {
                if o.bytes().all(|b| b.is_ascii_graphic()) && !o.is_empty() {
                    headers.push(("origin".to_owned(), o.clone()));
                }
            }
            let method = if *options { "OPTIONS" } else { "POST" };
            let url = format!("http://{host}{path}");
            if !*unsigned {
                let signing = Signing {
                    method,
                    url: &url,
                    headers: &headers,
                    body: body.as_bytes(),
                    key: &running.key,
                    time: SystemTime::now(),
                    presign: None,
                };
                if let Some(signed) = signing.sign() {
                    headers = signed
                        .headers()
                        .iter()
                        .filter_map(|(k, v)| {
                            Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
                        })
                        .collect();
                }
            }
            let mut text = format!("{method} {path} HTTP/1.1\r\n");
            for (k, v) in &headers {
                text.push_str(&format!("{k}: {v}\r\n"));
            }
            text.push_str(&format!(
                "content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ));
            (*listener, text.into_bytes())
        }
    };
    let address = running.listeners[usize::from(listener) % 4];
    exchange(address, &bytes);
}

fn exchange(address: SocketAddr, request: &[u8]) {
    let mut stream = TcpStream::connect(address).expect("the emulator is listening");
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .expect("a read timeout");
    // The server may answer and close before reading everything (a refused header).
    let _ = stream.write_all(request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no answer from the emulator within {ANSWER_TIMEOUT:?}: {e}"),
    }
    if !answer.is_empty() {
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
}
