//! The signaling wire format: JSON text frames with base64 JSON payloads.
//!
//! Client → service: `{"action", "recipientClientId"?, "messagePayload", "correlationId"?}`.
//! Service → client: `{"senderClientId"?, "messageType", "messagePayload"?, "statusResponse"?}`;
//! the storage session sends no `senderClientId`. Frames without a known `messageType` (e.g.
//! API Gateway's `{"message": "Endpoint request timed out", ...}`) are [`Incoming::Unknown`].

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// The most characters the service accepts in `messagePayload` (base64).
pub const MAX_PAYLOAD_CHARS: usize = 10_000;

/// What a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `SDP_OFFER`
    SdpOffer,
    /// `SDP_ANSWER`
    SdpAnswer,
    /// `ICE_CANDIDATE`
    IceCandidate,
}

impl Action {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SdpOffer => "SDP_OFFER",
            Self::SdpAnswer => "SDP_ANSWER",
            Self::IceCandidate => "ICE_CANDIDATE",
        }
    }
}

/// `offer` or `answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
}

/// A session description, as browsers serialize `RTCSessionDescription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub sdp_type: SdpType,
    /// The SDP text.
    pub sdp: String,
}

/// An ICE candidate, as browsers serialize `RTCIceCandidate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute line (without `a=`).
    pub candidate: String,
    /// The media stream id (`"0"` with BUNDLE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The m-line index.
    #[serde(
        default,
        rename = "sdpMLineIndex",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE ufrag, when the sender included it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// A message the service rejected (`STATUS_RESPONSE`), sent only for messages that carried a
/// correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    /// The correlation id of the rejected message.
    pub correlation_id: Option<String>,
    /// E.g. `InvalidArgumentException`, `ClientLimitExceededException`.
    pub error_type: Option<String>,
    /// The HTTP-like status (a string on the wire).
    pub status_code: Option<u16>,
    /// Why, in the service's words.
    pub description: Option<String>,
    /// `false` for a rejection.
    pub success: bool,
}

/// A signaling message received from the service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalingMessage {
    /// An SDP offer. From the storage session `sender` is `None`.
    Offer {
        /// `senderClientId`.
        sender: Option<String>,
        /// The offer.
        description: SessionDescription,
    },
    /// An SDP answer (P2P).
    Answer {
        /// `senderClientId`.
        sender: Option<String>,
        /// The answer.
        description: SessionDescription,
    },
    /// A trickled ICE candidate. It may arrive before the offer: buffer it.
    IceCandidate {
        /// `senderClientId`, `None` from the storage session.
        sender: Option<String>,
        /// The candidate.
        candidate: IceCandidate,
    },
}

/// One frame from the service, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// An offer, answer or candidate.
    Message(SignalingMessage),
    /// The service will close this connection; reconnect.
    GoAway,
    /// The relay (TURN) servers are going away; refresh ICE servers and reconnect.
    ReconnectIceServer,
    /// A rejected message.
    StatusResponse(StatusResponse),
    /// A frame this client does not understand; ignored.
    Unknown {
        /// Why it was not understood.
        reason: String,
    },
}

/// Decode one text frame. Never fails: what cannot be read is [`Incoming::Unknown`].
pub fn parse_incoming(text: &str) -> Incoming {
    let unknown = |reason: String| Incoming::Unknown { reason };
    let obj = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) => return unknown("not a JSON object".into()),
        Err(e) => return unknown(format!("not JSON: {e}")),
    };
    let member = |name: &str| {
        obj.get(name).or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    };
    let string = |name: &str| member(name).and_then(Value::as_str).map(str::to_owned);
    let Some(message_type) = string("messageType") else {
        return unknown("no messageType".into());
    };
    let sender = string("senderClientId").filter(|s| !s.is_empty());
    let payload = || -> Result<Vec<u8>, String> {
        let b64 = string("messagePayload").ok_or("no messagePayload")?;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("messagePayload is not base64: {e}"))
    };
    let decode = |expected: SdpType| -> Result<SessionDescription, String> {
        let description: SessionDescription = serde_json::from_slice(&payload()?)
            .map_err(|e| format!("payload is not a session description: {e}"))?;
        if description.sdp_type != expected {
            return Err(format!(
                "{message_type} carries a description of type {:?}",
                description.sdp_type
            ));
        }
        Ok(description)
    };
    let parsed = match message_type.as_str() {
        "SDP_OFFER" => decode(SdpType::Offer).map(|description| {
            Incoming::Message(SignalingMessage::Offer {
                sender,
                description,
            })
        }),
        "SDP_ANSWER" => decode(SdpType::Answer).map(|description| {
            Incoming::Message(SignalingMessage::Answer {
                sender,
                description,
            })
        }),
        "ICE_CANDIDATE" => payload().and_then(|bytes| {
            serde_json::from_slice::<IceCandidate>(&bytes)
                .map(|candidate| {
                    Incoming::Message(SignalingMessage::IceCandidate { sender, candidate })
                })
                .map_err(|e| format!("payload is not an ICE candidate: {e}"))
        }),
        "GO_AWAY" => Ok(Incoming::GoAway),
        "RECONNECT_ICE_SERVER" => Ok(Incoming::ReconnectIceServer),
        "STATUS_RESPONSE" => {
            let status = member("statusResponse").cloned().unwrap_or(Value::Null);
            let text = |name: &str| status.get(name).and_then(Value::as_str).map(str::to_owned);
            Ok(Incoming::StatusResponse(StatusResponse {
                correlation_id: text("correlationId"),
                error_type: text("errorType"),
                status_code: status.get("statusCode").and_then(|v| match v {
                    Value::String(s) => s.parse().ok(),
                    Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    _ => None,
                }),
                description: text("description"),
                success: status
                    .get("success")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }))
        }
        other => Err(format!("unknown messageType {other}")),
    };
    parsed.unwrap_or_else(unknown)
}

/// A message ready to go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub(crate) action: Action,
    pub(crate) recipient: Option<String>,
    pub(crate) payload: String,
}

impl Outgoing {
    /// An SDP answer.
    ///
    /// # Errors
    /// [`ErrorKind::MessageTooLarge`] when the encoded payload exceeds [`MAX_PAYLOAD_CHARS`].
    pub fn answer(sdp: impl Into<String>) -> Result<Self, Error> {
        Self::encode(
            Action::SdpAnswer,
            &SessionDescription {
                sdp_type: SdpType::Answer,
                sdp: sdp.into(),
            },
        )
    }

    /// An SDP offer.
    ///
    /// # Errors
    /// As [`Outgoing::answer`].
    pub fn offer(sdp: impl Into<String>) -> Result<Self, Error> {
        Self::encode(
            Action::SdpOffer,
            &SessionDescription {
                sdp_type: SdpType::Offer,
                sdp: sdp.into(),
            },
        )
    }

    /// A trickled ICE candidate.
    ///
    /// # Errors
    /// As [`Outgoing::answer`].
    pub fn ice_candidate(candidate: &IceCandidate) -> Result<Self, Error> {
        Self::encode(Action::IceCandidate, candidate)
    }

    /// Address the message to one client (a master talking to a P2P viewer). Leave it unset for
    /// the storage session and as a viewer.
    pub fn to_recipient(mut self, client_id: &kvs_webrtc_discovery::ClientId) -> Self {
        self.recipient = Some(client_id.as_str().to_owned());
        self
    }

    /// What this message is.
    pub fn action(&self) -> Action {
        self.action
    }

    fn encode(action: Action, body: &impl Serialize) -> Result<Self, Error> {
        let json = serde_json::to_vec(body).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, "the message cannot be encoded").with_source(e)
        })?;
        let payload = base64::engine::general_purpose::STANDARD.encode(json);
        if payload.len() > MAX_PAYLOAD_CHARS {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "the {} payload is {} base64 characters; the service accepts at most {MAX_PAYLOAD_CHARS}",
                    action.as_str(),
                    payload.len()
                ),
            ));
        }
        Ok(Self {
            action,
            recipient: None,
            payload,
        })
    }

    /// The JSON text frame.
    pub(crate) fn to_frame(&self, correlation_id: &str) -> String {
        let mut frame = serde_json::Map::new();
        frame.insert("action".into(), self.action.as_str().into());
        if let Some(recipient) = &self.recipient {
            frame.insert("recipientClientId".into(), recipient.as_str().into());
        }
        frame.insert("messagePayload".into(), self.payload.as_str().into());
        frame.insert("correlationId".into(), correlation_id.into());
        Value::Object(frame).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(value: Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(value.to_string())
    }

    #[test]
    fn a_storage_offer_has_no_sender() {
        let frame = json!({
            "messageType": "SDP_OFFER",
            "messagePayload": b64(json!({"type": "offer", "sdp": "v=0\r\n"})),
        });
        assert_eq!(
            parse_incoming(&frame.to_string()),
            Incoming::Message(SignalingMessage::Offer {
                sender: None,
                description: SessionDescription {
                    sdp_type: SdpType::Offer,
                    sdp: "v=0\r\n".into()
                }
            })
        );
    }

    #[test]
    fn candidates_keep_sender_and_fields_in_either_key_spelling() {
        let frame = json!({
            "SenderClientId": "viewer-1",
            "MessageType": "ICE_CANDIDATE",
            "MessagePayload": b64(json!({"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"})),
        });
        let Incoming::Message(SignalingMessage::IceCandidate { sender, candidate }) =
            parse_incoming(&frame.to_string())
        else {
            panic!("not a candidate");
        };
        assert_eq!(sender.as_deref(), Some("viewer-1"));
        assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
        assert_eq!(candidate.sdp_m_line_index, Some(0));
        assert_eq!(candidate.username_fragment.as_deref(), Some("abcd"));
    }

    #[test]
    fn status_responses_are_decoded_with_a_string_status_code() {
        let frame = json!({"messageType": "STATUS_RESPONSE", "statusResponse": {
            "correlationId": "c-1", "errorType": "InvalidArgumentException",
            "statusCode": "400", "description": "bad", "success": false}});
        assert_eq!(
            parse_incoming(&frame.to_string()),
            Incoming::StatusResponse(StatusResponse {
                correlation_id: Some("c-1".into()),
                error_type: Some("InvalidArgumentException".into()),
                status_code: Some(400),
                description: Some("bad".into()),
                success: false,
            })
        );
    }

    #[test]
    fn control_messages_are_recognized() {
        for (kind, expected) in [
            ("GO_AWAY", Incoming::GoAway),
            ("RECONNECT_ICE_SERVER", Incoming::ReconnectIceServer),
        ] {
            let frame = json!({"messageType": kind, "senderClientId": "x", "messagePayload": ""});
            assert_eq!(parse_incoming(&frame.to_string()), expected);
        }
    }

    #[test]
    fn what_cannot_be_read_is_unknown_not_an_error() {
        let frames = [
            json!({"message": "Endpoint request timed out", "connectionId": "x", "requestId": "y"})
                .to_string(),
            "not json".to_owned(),
            "[1, 2]".to_owned(),
            json!({"messageType": "SOMETHING_NEW"}).to_string(),
            json!({"messageType": "SDP_OFFER", "messagePayload": "!!!"}).to_string(),
            json!({"messageType": "SDP_OFFER", "messagePayload": b64(json!({"type": "answer", "sdp": ""}))}).to_string(),
            json!({"messageType": "ICE_CANDIDATE", "messagePayload": b64(json!({"sdpMid": "0"}))}).to_string(),
        ];
        for frame in frames {
            assert!(
                matches!(parse_incoming(&frame), Incoming::Unknown { .. }),
                "{frame}"
            );
        }
    }

    #[test]
    fn outgoing_frames_round_trip_and_oversize_payloads_are_refused() {
        let answer = Outgoing::answer("v=0\r\na=x\r\n").unwrap();
        let frame: Value = serde_json::from_str(&answer.to_frame("c-9")).unwrap();
        assert_eq!(frame["action"], "SDP_ANSWER");
        assert_eq!(frame["correlationId"], "c-9");
        assert!(frame.get("recipientClientId").is_none());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(frame["messagePayload"].as_str().unwrap())
            .unwrap();
        let description: SessionDescription = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(description.sdp, "v=0\r\na=x\r\n");

        let viewer = kvs_webrtc_discovery::ClientId::new("v1").unwrap();
        let addressed = Outgoing::offer("v=0").unwrap().to_recipient(&viewer);
        assert!(addressed
            .to_frame("c")
            .contains("\"recipientClientId\":\"v1\""));

        // 7 500 bytes of JSON are exactly 10 000 base64 characters.
        let overhead = serde_json::to_vec(&SessionDescription {
            sdp_type: SdpType::Answer,
            sdp: String::new(),
        })
        .unwrap()
        .len();
        assert!(Outgoing::answer("a".repeat(7_500 - overhead)).is_ok());
        let err = Outgoing::answer("a".repeat(7_501 - overhead)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
        assert!(err.to_string().contains("10000"), "{err}");
    }
}
