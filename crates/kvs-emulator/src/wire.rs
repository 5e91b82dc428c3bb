//! The JSON frames of the signaling WebSocket (protocol notes §3).
//!
//! Client frames are accepted with either key spelling (`messagePayload` / `MessagePayload`);
//! service frames use the documented lower-camel form, without `senderClientId` when they come
//! from the storage peer.

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// What a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    SdpOffer,
    SdpAnswer,
    IceCandidate,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::SdpOffer => "SDP_OFFER",
            Action::SdpAnswer => "SDP_ANSWER",
            Action::IceCandidate => "ICE_CANDIDATE",
        }
    }
}

/// A frame received from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientMessage {
    pub action: Action,
    /// Empty, absent and `null` all mean "none".
    pub recipient: Option<String>,
    /// Base64 text as received.
    pub payload: String,
    pub correlation_id: Option<String>,
}

/// Why a client frame was refused; answered with STATUS_RESPONSE when it had a correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub correlation_id: Option<String>,
    pub error_type: &'static str,
    pub status_code: u16,
    pub description: String,
}

impl Rejection {
    fn invalid(correlation_id: Option<String>, description: impl Into<String>) -> Self {
        Self {
            correlation_id,
            error_type: "InvalidArgumentException",
            status_code: 400,
            description: description.into(),
        }
    }
}

fn member<'a>(obj: &'a Map<String, Value>, lower: &str) -> Option<&'a Value> {
    obj.get(lower).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(lower))
            .map(|(_, v)| v)
    })
}

fn string_member(obj: &Map<String, Value>, lower: &str) -> Option<String> {
    match member(obj, lower) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Parse and validate one text frame from a client.
pub(crate) fn parse_client_message(
    text: &str,
    max_payload: usize,
) -> Result<ClientMessage, Rejection> {
    let obj = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => obj,
        _ => return Err(Rejection::invalid(None, "Message is not a JSON object.")),
    };
    let correlation_id = string_member(&obj, "correlationId");
    if let Some(id) = &correlation_id {
        if !valid_id(id) {
            // The id itself is unusable, so nobody could match a STATUS_RESPONSE to it.
            return Err(Rejection::invalid(
                None,
                "correlationId must match [a-zA-Z0-9_.-]{1,256}.",
            ));
        }
    }
    let action = match string_member(&obj, "action").as_deref() {
        Some("SDP_OFFER") => Action::SdpOffer,
        Some("SDP_ANSWER") => Action::SdpAnswer,
        Some("ICE_CANDIDATE") => Action::IceCandidate,
        Some(other) => {
            return Err(Rejection::invalid(
                correlation_id,
                format!("Unknown action {other}; expected SDP_OFFER, SDP_ANSWER or ICE_CANDIDATE."),
            ))
        }
        None => return Err(Rejection::invalid(correlation_id, "Message has no action.")),
    };
    let payload = string_member(&obj, "messagePayload")
        .ok_or_else(|| Rejection::invalid(correlation_id.clone(), "messagePayload is required."))?;
    if payload.len() > max_payload {
        return Err(Rejection::invalid(
            correlation_id,
            format!("messagePayload is longer than {max_payload} characters."),
        ));
    }
    if !payload
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(Rejection::invalid(
            correlation_id,
            "messagePayload is not base64.",
        ));
    }
    let recipient = string_member(&obj, "recipientClientId");
    if let Some(r) = &recipient {
        if !valid_id(r) {
            return Err(Rejection::invalid(
                correlation_id,
                "recipientClientId must match [a-zA-Z0-9_.-]{1,256}.",
            ));
        }
    }
    Ok(ClientMessage {
        action,
        recipient,
        payload,
        correlation_id,
    })
}

/// A service → client event frame.
pub(crate) fn event(message_type: &str, sender: Option<&str>, payload_b64: &str) -> String {
    let mut obj = Map::new();
    if let Some(sender) = sender {
        obj.insert("senderClientId".into(), json!(sender));
    }
    obj.insert("messageType".into(), json!(message_type));
    obj.insert("messagePayload".into(), json!(payload_b64));
    Value::Object(obj).to_string()
}

/// A STATUS_RESPONSE frame (statusCode is a string on the wire).
pub(crate) fn status_response(rejection: &Rejection) -> Option<String> {
    let correlation_id = rejection.correlation_id.as_ref()?;
    Some(
        json!({
            "messageType": "STATUS_RESPONSE",
            "statusResponse": {
                "correlationId": correlation_id,
                "errorType": rejection.error_type,
                "statusCode": rejection.status_code.to_string(),
                "description": rejection.description,
                "success": false,
            }
        })
        .to_string(),
    )
}

/// A GO_AWAY or RECONNECT_ICE_SERVER frame.
pub(crate) fn control(message_type: &str) -> String {
    json!({ "messageType": message_type }).to_string()
}

/// Base64 of the JSON of an SDP: `{"type": ..., "sdp": ...}`.
pub(crate) fn encode_sdp(kind: &str, sdp: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({ "type": kind, "sdp": sdp }).to_string())
}

/// Base64 of the JSON of an ICE candidate for the m-line at `m_line_index` of the offer, whose
/// `a=mid` is `mid` (strict peers such as browsers reject a candidate naming no m-line of the
/// offer).
pub(crate) fn encode_candidate(candidate: &str, mid: &str, m_line_index: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(
        json!({ "candidate": candidate, "sdpMid": mid, "sdpMLineIndex": m_line_index }).to_string(),
    )
}

/// Decode a payload into its JSON object.
pub(crate) fn decode_payload(payload_b64: &str) -> Option<Map<String, Value>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload_b64)
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(obj) => Some(obj),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_key_spellings_parse_alike() {
        let js = r#"{"action":"SDP_ANSWER","messagePayload":"eyJ9","correlationId":"1700"}"#;
        let c = r#"{"action":"SDP_ANSWER","RecipientClientId":"","MessagePayload":"eyJ9","CorrelationId":"1700"}"#;
        let a = parse_client_message(js, 10_000).unwrap();
        let b = parse_client_message(c, 10_000).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.recipient, None);
        assert_eq!(a.correlation_id.as_deref(), Some("1700"));
    }

    #[test]
    fn rejections_carry_the_correlation_id_only_when_usable() {
        let err = parse_client_message(
            r#"{"action":"NOPE","messagePayload":"eA==","correlationId":"c1"}"#,
            10,
        )
        .unwrap_err();
        assert_eq!(err.correlation_id.as_deref(), Some("c1"));
        let frame = status_response(&err).unwrap();
        let v: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["statusResponse"]["statusCode"], "400");
        assert_eq!(v["statusResponse"]["success"], false);

        let err = parse_client_message("not json", 10).unwrap_err();
        assert!(status_response(&err).is_none());
        let err = parse_client_message(
            r#"{"action":"SDP_ANSWER","messagePayload":"eA==","correlationId":"bad id"}"#,
            10,
        )
        .unwrap_err();
        assert!(status_response(&err).is_none());
    }

    #[test]
    fn payload_limits_are_enforced() {
        let long = format!(
            r#"{{"action":"ICE_CANDIDATE","messagePayload":"{}","correlationId":"c"}}"#,
            "A".repeat(11)
        );
        assert!(parse_client_message(&long, 10)
            .unwrap_err()
            .description
            .contains("longer than 10"));
        let not_b64 = r#"{"action":"ICE_CANDIDATE","messagePayload":"{}","correlationId":"c"}"#;
        assert!(parse_client_message(not_b64, 10)
            .unwrap_err()
            .description
            .contains("base64"));
    }

    #[test]
    fn storage_peer_events_have_no_sender() {
        let frame = event("SDP_OFFER", None, "eA==");
        let v: Value = serde_json::from_str(&frame).unwrap();
        assert!(v.get("senderClientId").is_none());
        assert_eq!(v["messageType"], "SDP_OFFER");
        let payload = decode_payload(&encode_sdp("offer", "v=0\r\n")).unwrap();
        assert_eq!(payload["type"], "offer");
        assert_eq!(payload["sdp"], "v=0\r\n");
    }
}
