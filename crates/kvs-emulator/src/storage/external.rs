//! Storage peers outside the emulator: another WebRTC stack (a browser, a test harness) plays
//! the storage session for a channel, so that what a device sends is received by an
//! implementation independent of ours.
//!
//! The external peer opens a WebSocket to `wss://<control plane>/_emulator/v1/storage-peer?channel=<name or ARN>`.
//! From then on every join of that channel is handed to it instead of the built-in str0m peer
//! (joins made while none is registered still get the built-in one). JSON text frames:
//!
//! - emulator → peer: `{"type":"join","session":N,"role":"MASTER"|"VIEWER"}`, then the client's
//!   `{"type":"answer","sdp":...}` and `{"type":"candidate","candidate":...,"sdpMid":...,"sdpMLineIndex":...}`,
//!   and `{"type":"end","reason":...}` when the session is superseded or the emulator stops;
//! - peer → emulator: `{"type":"offer","sdp":...}` and `{"type":"candidate",...}` (delivered to the
//!   client as the storage session's SDP_OFFER and ICE_CANDIDATE, without `senderClientId`),
//!   `{"type":"connected"}`, and `{"type":"report",...}`: any JSON, kept as the session's
//!   `externalReport` in the inspection API.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::external_peers::Join;
use crate::http_server::HttpResponse;
use crate::link::{Outbound, PeerInput, Role};
use crate::registry::ResourceRef;
use crate::sessions::{SessionHandle, SessionState};
use crate::shared::Shared;
use crate::wire::{self, Action};

/// Where external storage peers connect (on the control-plane listener).
pub(crate) const PATH: &str = "/_emulator/v1/storage-peer";
/// How long a message to the peer may wait for room in its socket.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the peer is given to hear that the emulator stops.
const SHUTDOWN_GOODBYE: std::time::Duration = std::time::Duration::from_millis(250);

/// `GET /_emulator/v1/storage-peer?channel=...`: upgrade and serve an external peer.
pub(crate) async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>) -> HttpResponse {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let query = req.uri().query().unwrap_or("").to_owned();
    let channel = crate::sigv4::decode_query(&query)
        .into_iter()
        .find(|(k, _)| k == "channel")
        .map(|(_, v)| v);
    let refuse = |status: StatusCode, message: String| {
        let mut resp = HttpResponse::new(Default::default());
        *resp.status_mut() = status;
        tracing::info!(%message, "storage-peer connection refused");
        resp
    };
    if !crate::http_util::origin_allowed(req.headers()) {
        return refuse(StatusCode::FORBIDDEN, "a web page of another origin".into());
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return refuse(StatusCode::BAD_REQUEST, "not a WebSocket upgrade".into());
    };
    let Some(channel) = channel else {
        return refuse(StatusCode::BAD_REQUEST, "no ?channel=".into());
    };
    let channel_arn = match shared
        .registry()
        .channel(ResourceRef::name_or_arn(&channel))
    {
        Ok(c) => c.arn.clone(),
        Err(_) => return refuse(StatusCode::NOT_FOUND, format!("no channel {channel}")),
    };
    let (registration, joins) = shared.external_peers.register(&channel_arn);
    tracing::info!(channel = %channel_arn, "external storage peer registered");
    let mut resp = HttpResponse::new(Default::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if let Ok(value) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    let task_shared = shared.clone();
    shared.peers.spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, None)
                .await;
            let mut peer = Peer {
                shared: &task_shared,
                channel_arn: &channel_arn,
                ws,
                current: None,
            };
            peer.run(joins).await;
            task_shared
                .external_peers
                .unregister(&channel_arn, registration);
        }
        tracing::info!(channel = %channel_arn, "external storage peer gone");
    });
    resp
}

struct Current {
    handle: Arc<SessionHandle>,
    role: Role,
    inbound: mpsc::Receiver<PeerInput>,
    offered: bool,
}

struct Peer<'a> {
    shared: &'a Shared,
    channel_arn: &'a str,
    ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    current: Option<Current>,
}

enum Wake {
    Join(Option<Join>),
    FromPeer(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    FromClient(Option<PeerInput>),
    Superseded,
    Shutdown,
}

impl Peer<'_> {
    async fn run(&mut self, mut joins: mpsc::Receiver<Join>) {
        loop {
            let offered = self.current.as_ref().is_some_and(|c| c.offered);
            let wake = {
                let current = self.current.as_mut();
                let (inbound, cancel) = match current {
                    Some(c) => (Some(&mut c.inbound), Some(c.handle.cancel.clone())),
                    None => (None, None),
                };
                tokio::select! {
                    join = joins.recv() => Wake::Join(join),
                    message = self.ws.next() => Wake::FromPeer(message),
                    input = async { match inbound { Some(rx) => rx.recv().await, None => std::future::pending().await } }, if offered => Wake::FromClient(input),
                    _ = async { match cancel { Some(c) => c.cancelled().await, None => std::future::pending().await } } => Wake::Superseded,
                    _ = self.shared.shutdown.cancelled() => Wake::Shutdown,
                }
            };
            match wake {
                Wake::Join(None) => {
                    self.end("replaced by a newer external storage peer").await;
                    let _ = self.ws.close(None).await;
                    return;
                }
                Wake::Shutdown => {
                    // The session's record is closed whatever happens; the peer is told if it
                    // reads in time (the emulator's exit waits for nobody).
                    let goodbye = async {
                        self.end("emulator shutting down").await;
                        let _ = self.ws.close(None).await;
                    };
                    let _ = tokio::time::timeout(SHUTDOWN_GOODBYE, goodbye).await;
                    self.end_quietly("emulator shutting down");
                    return;
                }
                Wake::Join(Some(join)) => self.start(join).await,
                Wake::FromPeer(Some(Ok(Message::Text(text)))) => self.on_peer_message(&text).await,
                Wake::FromPeer(Some(Ok(_))) => {}
                Wake::FromPeer(None | Some(Err(_))) => {
                    self.end("the external storage peer disconnected").await;
                    return;
                }
                Wake::FromClient(Some(PeerInput::Signal {
                    action, payload, ..
                })) => self.on_client_signal(action, &payload).await,
                Wake::FromClient(None) => self.end("emulator shutting down").await,
                Wake::Superseded => self.end("superseded by a newer join").await,
            }
        }
    }

    async fn start(&mut self, join: Join) {
        self.end("superseded by a newer join").await;
        let role = match &join.role {
            Role::Master => "MASTER",
            Role::Viewer(_) => "VIEWER",
        };
        let message = json!({ "type": "join", "session": join.handle.id, "role": role });
        self.current = Some(Current {
            handle: join.handle,
            role: join.role,
            inbound: join.inbound,
            offered: false,
        });
        self.send(message).await;
    }

    async fn on_peer_message(&mut self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(current) = &mut self.current else {
            return;
        };
        let str_field = |name: &str| message.get(name).and_then(Value::as_str).unwrap_or("");
        let to_client = match str_field("type") {
            "offer" => {
                current.offered = true;
                current.handle.update(|i| {
                    i.offers_sent += 1;
                    i.state = SessionState::OfferSent;
                });
                Some(wire::event(
                    "SDP_OFFER",
                    None,
                    &wire::encode_sdp("offer", str_field("sdp")),
                ))
            }
            "candidate" => {
                current.handle.update(|i| i.candidates_sent += 1);
                let index = message
                    .get("sdpMLineIndex")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                Some(wire::event(
                    "ICE_CANDIDATE",
                    None,
                    &wire::encode_candidate(
                        str_field("candidate"),
                        str_field("sdpMid"),
                        index as u32,
                    ),
                ))
            }
            "connected" => {
                current.handle.update(|i| i.state = SessionState::Connected);
                None
            }
            "report" => {
                current
                    .handle
                    .update(|i| i.external_report = Some(message.clone()));
                None
            }
            _ => None,
        };
        if let Some(frame) = to_client {
            let delivered = self
                .shared
                .hub
                .find(self.channel_arn, &current.role)
                .is_some_and(|conn| conn.send(Outbound::Text(frame)));
            if !delivered {
                self.end("no signaling socket was connected to receive the offer")
                    .await;
            }
        }
    }

    async fn on_client_signal(&mut self, action: Action, payload: &str) {
        let Some(body) = wire::decode_payload(payload) else {
            return;
        };
        let message = match action {
            Action::SdpAnswer => {
                if let Some(c) = &self.current {
                    c.handle.update(|i| i.state = SessionState::Answered);
                }
                json!({ "type": "answer", "sdp": body.get("sdp").cloned().unwrap_or(Value::Null) })
            }
            Action::IceCandidate => {
                if let Some(c) = &self.current {
                    c.handle.update(|i| i.candidates_received += 1);
                }
                json!({
                    "type": "candidate",
                    "candidate": body.get("candidate").cloned().unwrap_or(Value::Null),
                    "sdpMid": body.get("sdpMid").cloned().unwrap_or(Value::Null),
                    "sdpMLineIndex": body.get("sdpMLineIndex").cloned().unwrap_or(Value::Null),
                })
            }
            Action::SdpOffer => return,
        };
        self.send(message).await;
    }

    /// End the current session, if any: tell the peer, close the record.
    async fn end(&mut self, reason: &str) {
        let Some(id) = self.current.as_ref().map(|c| c.handle.id) else {
            return;
        };
        self.send(json!({ "type": "end", "session": id, "reason": reason }))
            .await;
        self.end_quietly(reason);
    }

    /// End the current session, if any, without telling the peer: close the record.
    fn end_quietly(&mut self, reason: &str) {
        let Some(current) = self.current.take() else {
            return;
        };
        current.handle.update(|i| {
            i.state = SessionState::Ended;
            i.end_reason.get_or_insert_with(|| reason.to_owned());
        });
        self.shared.sessions.finished(
            &current.handle,
            &current.role,
            self.shared.config.timings.viewer_slot_hold,
        );
    }

    /// Send to the peer; one that has not taken a message within [`SEND_TIMEOUT`] (its
    /// socket's buffers full) misses it.
    async fn send(&mut self, message: Value) {
        let sent = tokio::time::timeout(
            SEND_TIMEOUT,
            self.ws.send(Message::Text(message.to_string().into())),
        )
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "external storage peer unreachable"),
            Err(_) => tracing::info!("external storage peer does not read; a message was dropped"),
        }
    }
}
