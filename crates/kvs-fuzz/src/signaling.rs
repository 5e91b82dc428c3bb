//! The signaling client's decoding of the frames the service sends
//! (`kvs_webrtc_signaling::message::parse_incoming`).
//!
//! A frame is JSON whose payload is base64 of more JSON; random bytes stop at the first
//! parser, so most inputs are built: a frame of a chosen (or arbitrary) type whose payload is
//! the base64 of a description or candidate built from arbitrary fields, or arbitrary text.

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use kvs_webrtc_signaling::message::{parse_incoming, Incoming};
use serde_json::{json, Map, Value};

/// A JSON value from arbitrary bytes, a few levels deep.
#[derive(Debug, Arbitrary)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn value(&self) -> Value {
        self.value_at(0)
    }

    fn value_at(&self, depth: usize) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => json!(b),
            Json::Int(i) => json!(i),
            Json::Float(f) => json!(f),
            Json::Text(s) => json!(s),
            Json::List(_) | Json::Object(_) if depth > 4 => Value::Null,
            Json::List(items) => items.iter().map(|v| v.value_at(depth + 1)).collect(),
            Json::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value_at(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// A field that is usually what the service sends, sometimes anything.
#[derive(Debug, Arbitrary)]
enum Field<T> {
    Typical(T),
    Absent,
    Other(Json),
}

impl<T: Into<Value> + Clone> Field<T> {
    fn put(&self, obj: &mut Map<String, Value>, key: &str) {
        match self {
            Field::Typical(v) => {
                obj.insert(key.into(), v.clone().into());
            }
            Field::Absent => {}
            Field::Other(v) => {
                obj.insert(key.into(), v.value());
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
enum MessageType {
    Offer,
    Answer,
    Candidate,
    GoAway,
    ReconnectIceServer,
    StatusResponse,
    Other(String),
}

impl MessageType {
    fn as_str(&self) -> &str {
        match self {
            MessageType::Offer => "SDP_OFFER",
            MessageType::Answer => "SDP_ANSWER",
            MessageType::Candidate => "ICE_CANDIDATE",
            MessageType::GoAway => "GO_AWAY",
            MessageType::ReconnectIceServer => "RECONNECT_ICE_SERVER",
            MessageType::StatusResponse => "STATUS_RESPONSE",
            MessageType::Other(s) => s,
        }
    }
}

/// The payload's JSON before base64.
#[derive(Debug, Arbitrary)]
enum Payload {
    Description {
        kind: Field<String>,
        sdp: Field<String>,
    },
    Candidate {
        candidate: Field<String>,
        sdp_mid: Field<String>,
        sdp_m_line_index: Field<u16>,
        username_fragment: Field<String>,
        upper_case_keys: bool,
    },
    Json(Json),
    /// Not base64 (or anything base64 decodes to).
    Raw(String),
}

impl Payload {
    fn base64(&self) -> String {
        let mut obj = Map::new();
        match self {
            Payload::Description { kind, sdp } => {
                kind.put(&mut obj, "type");
                sdp.put(&mut obj, "sdp");
            }
            Payload::Candidate {
                candidate,
                sdp_mid,
                sdp_m_line_index,
                username_fragment,
                upper_case_keys,
            } => {
                let key = |k: &str| {
                    if *upper_case_keys {
                        let mut c = k.chars();
                        c.next()
                            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                            .unwrap_or_default()
                    } else {
                        k.to_owned()
                    }
                };
                candidate.put(&mut obj, &key("candidate"));
                sdp_mid.put(&mut obj, &key("sdpMid"));
                sdp_m_line_index.put(&mut obj, &key("sdpMLineIndex"));
                username_fragment.put(&mut obj, &key("usernameFragment"));
            }
            Payload::Json(v) => {
                return base64::engine::general_purpose::STANDARD.encode(v.value().to_string())
            }
            Payload::Raw(s) => return s.clone(),
        }
        base64::engine::general_purpose::STANDARD.encode(Value::Object(obj).to_string())
    }
}

/// One frame from the service.
// Built from fuzzer bytes once per input: the size of the text variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Arbitrary)]
enum Frame {
    Built {
        message_type: Field<MessageTypeValue>,
        sender: Field<String>,
        payload: Option<Payload>,
        status: Option<Vec<(String, Json)>>,
        extra: Vec<(String, Json)>,
    },
    Text(String),
}

/// `messageType` as a JSON string.
#[derive(Debug, Arbitrary, Clone)]
struct MessageTypeValue(MessageType2);

#[derive(Debug, Arbitrary, Clone)]
enum MessageType2 {
    Known(u8),
    Other(String),
}

impl From<MessageTypeValue> for Value {
    fn from(v: MessageTypeValue) -> Self {
        let known = [
            MessageType::Offer,
            MessageType::Answer,
            MessageType::Candidate,
            MessageType::GoAway,
            MessageType::ReconnectIceServer,
            MessageType::StatusResponse,
        ];
        match v.0 {
            MessageType2::Known(i) => json!(known[usize::from(i) % known.len()].as_str()),
            MessageType2::Other(s) => json!(MessageType::Other(s).as_str()),
        }
    }
}

impl Frame {
    fn text(&self) -> String {
        match self {
            Frame::Text(s) => s.clone(),
            Frame::Built {
                message_type,
                sender,
                payload,
                status,
                extra,
            } => {
                let mut obj = Map::new();
                for (k, v) in extra {
                    obj.insert(k.clone(), v.value());
                }
                message_type.put(&mut obj, "messageType");
                sender.put(&mut obj, "senderClientId");
                if let Some(p) = payload {
                    obj.insert("messagePayload".into(), json!(p.base64()));
                }
                if let Some(fields) = status {
                    let status: Map<String, Value> =
                        fields.iter().map(|(k, v)| (k.clone(), v.value())).collect();
                    obj.insert("statusResponse".into(), Value::Object(status));
                }
                Value::Object(obj).to_string()
            }
        }
    }
}

/// Decode one frame: built from the bytes, and the bytes themselves as text.
pub fn message(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    let u = Unstructured::new(data);
    if let Ok(frame) = Frame::arbitrary_take_rest(u) {
        check(&frame.text());
    }
}

fn check(text: &str) {
    match parse_incoming(text) {
        Incoming::Unknown { reason } => assert!(!reason.is_empty()),
        other => {
            let _ = format!("{other:?}");
        }
    }
}
