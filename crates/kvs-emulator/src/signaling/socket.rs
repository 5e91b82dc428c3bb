//! The WSS endpoint: presigned upgrade, then one task per socket that validates, rate-limits and
//! routes frames, and enforces the idle and maximum lifetimes and GO_AWAY.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use http::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    UPGRADE,
};
use http::StatusCode;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::{
    frame::coding::CloseCode, CloseFrame, Role as WsRole, WebSocketConfig,
};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::rate::TokenBucket;
use crate::api_error::{Api, ApiError};
use crate::http_server::HttpResponse;
use crate::http_util;
use crate::link::{Connection, Outbound, PeerInput, Role};
use crate::registry::ResourceRef;
use crate::shared::Shared;
use crate::sigv4::{self, ReceivedRequest};
use crate::validate;
use crate::wire::{self, Action, ClientMessage, Rejection};

/// Serve one request on the WSS listener.
pub(crate) async fn handle(shared: Arc<Shared>, mut req: Request<Incoming>) -> HttpResponse {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let reject = |err: ApiError| http_util::error(Api::SignalingRest, &err, Some(&parts.headers));

    let Some(key) = parts.headers.get(SEC_WEBSOCKET_KEY).cloned() else {
        return reject(ApiError::invalid_argument(
            "Expected a WebSocket upgrade request.",
        ));
    };
    // ConnectAsMaster / ConnectAsViewer, told apart by the client id in the query.
    let operation = if query.contains("X-Amz-ClientId=") {
        "connectAsViewer"
    } else {
        "connectAsMaster"
    };
    shared.calls.record(operation);
    let signed = ReceivedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: &query,
        headers: &parts.headers,
        body: b"",
    };
    if let Err(failure) = sigv4::verify_query(&signed, &shared.expectation(SystemTime::now())) {
        tracing::info!(reason = %failure, "signaling connect refused");
        if failure == sigv4::AuthFailure::ExpiredToken {
            return reject(ApiError::expired_token());
        }
        return reject(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            failure.to_string(),
        ));
    }
    let params = sigv4::decode_query(&query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let role = match connect_role(&shared, param("X-Amz-ChannelARN"), param("X-Amz-ClientId")) {
        Ok(r) => r,
        Err(err) => return reject(err),
    };
    let channel_arn = param("X-Amz-ChannelARN").unwrap_or_default();
    if let Err(err) = shared
        .throttle
        .admit(operation, Some(&channel_arn), Instant::now())
    {
        return reject(err);
    }
    let (conn, outbound) = match shared.hub.register(&channel_arn, role) {
        Ok(c) => c,
        Err(err) => return reject(err),
    };
    tracing::info!(connection = conn.id, channel = %channel_arn, role = ?conn.role, "signaling socket connected");

    let mut resp = HttpResponse::new(Default::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is ASCII"),
    );
    if let Some(first) = parts
        .headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| HeaderValue::from_str(v.trim()).ok())
    {
        h.insert(SEC_WEBSOCKET_PROTOCOL, first);
    }

    let task_shared = shared.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    WsRole::Server,
                    Some(websocket_limits(&task_shared)),
                )
                .await;
                run(task_shared.clone(), conn.clone(), ws, outbound).await;
            }
            Err(e) => tracing::debug!(connection = conn.id, error = %e, "WebSocket upgrade failed"),
        }
        task_shared.hub.unregister(&conn);
        tracing::info!(connection = conn.id, "signaling socket closed");
    });
    resp
}

fn connect_role(
    shared: &Shared,
    channel_arn: Option<String>,
    client_id: Option<String>,
) -> Result<Role, ApiError> {
    let arn =
        channel_arn.ok_or_else(|| ApiError::invalid_argument("X-Amz-ChannelARN is required."))?;
    validate::arn("X-Amz-ChannelARN", &arn)?;
    shared.registry().channel(ResourceRef::Arn(&arn))?;
    match client_id {
        None => Ok(Role::Master),
        Some(id) => {
            validate::name("X-Amz-ClientId", &id, 256)?;
            if id.starts_with("AWS_") {
                return Err(ApiError::invalid_argument(
                    "X-Amz-ClientId must not start with AWS_.",
                ));
            }
            Ok(Role::Viewer(id))
        }
    }
}

async fn run<S>(
    shared: Arc<Shared>,
    conn: Arc<Connection>,
    mut ws: WebSocketStream<S>,
    mut outbound: tokio::sync::mpsc::Receiver<Outbound>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let timings = &shared.config.timings;
    let opened = tokio::time::Instant::now();
    let hard_stop = opened + timings.signaling_max_lifetime;
    let mut last_activity = opened;
    let mut go_away_deadline: Option<tokio::time::Instant> = None;
    let mut sdp_rate = TokenBucket::per_second(shared.config.limits.sdp_messages_per_second);
    let mut candidate_rate =
        TokenBucket::per_second(shared.config.limits.ice_candidates_per_second);

    let close_reason = loop {
        let idle_deadline = last_activity + timings.signaling_idle_timeout;
        let deadline = [Some(hard_stop), Some(idle_deadline), go_away_deadline]
            .into_iter()
            .flatten()
            .min()
            .expect("hard_stop is always set");
        tokio::select! {
            _ = shared.shutdown.cancelled() => break Some((CloseCode::Normal, "emulator shutting down".to_owned())),
            _ = tokio::time::sleep_until(deadline) => {
                let reason = if Some(deadline) == go_away_deadline {
                    "GO_AWAY grace period over"
                } else if deadline == idle_deadline {
                    "idle timeout"
                } else {
                    "maximum connection duration reached"
                };
                break Some((CloseCode::Normal, reason.to_owned()));
            }
            out = outbound.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if ws.send(Message::text(text)).await.is_err() { break None; }
                }
                Some(Outbound::GoAway) => {
                    if ws.send(Message::text(wire::control("GO_AWAY"))).await.is_err() { break None; }
                    go_away_deadline = Some(tokio::time::Instant::now() + timings.go_away_grace);
                }
                Some(Outbound::Close(reason)) => break Some((CloseCode::Normal, reason)),
                Some(Outbound::Freeze) => {
                    tracing::info!(connection = conn.id, "socket frozen by a fault");
                    break frozen(&shared, &mut outbound, hard_stop)
                        .await
                        .map(|reason| (CloseCode::Normal, reason));
                }
                None => break Some((CloseCode::Normal, "emulator shutting down".to_owned())),
            },
            frame = ws.next() => {
                last_activity = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        handle_text(&shared, &conn, text.as_str(), &mut sdp_rate, &mut candidate_rate);
                    }
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Ok(Message::Binary(_))) => {
                        tracing::debug!(connection = conn.id, "binary frame ignored");
                    }
                    Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
                    Some(Err(WsError::Capacity(e))) => {
                        tracing::info!(connection = conn.id, error = %e, "message too large; closing");
                        break Some((CloseCode::Size, format!("message too large: {e}")));
                    }
                    Some(Err(e)) => {
                        tracing::debug!(connection = conn.id, error = %e, "signaling socket read failed");
                        break None;
                    }
                }
            }
        }
    };
    if let Some((code, reason)) = close_reason {
        tracing::info!(connection = conn.id, %reason, "closing signaling socket");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), ws.close(Some(frame))).await;
    }
}

/// The largest frame and message a client may send: a payload of `max_message_payload`
/// characters plus the JSON around it (action, recipient, correlation id), rounded up. Larger
/// frames are refused from their header, before their bytes are read (close 1009).
fn websocket_limits(shared: &Shared) -> WebSocketConfig {
    let max = shared.config.limits.max_message_payload + MESSAGE_ENVELOPE;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Room for what surrounds `messagePayload` in a client message (recipient id up to 256
/// characters, correlation id, keys and quotes).
const MESSAGE_ENVELOPE: usize = 2048;

/// A frozen socket neither reads nor writes (so pings go unanswered) until it is closed, replaced,
/// or the emulator stops; then it is dropped without a close frame.
async fn frozen(
    shared: &Shared,
    outbound: &mut tokio::sync::mpsc::Receiver<Outbound>,
    hard_stop: tokio::time::Instant,
) -> Option<String> {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return None,
            _ = tokio::time::sleep_until(hard_stop) => return None,
            out = outbound.recv() => match out {
                Some(Outbound::Close(_)) | None => return None,
                Some(_) => {} // still frozen
            },
        }
    }
}

fn handle_text(
    shared: &Shared,
    conn: &Arc<Connection>,
    text: &str,
    sdp_rate: &mut TokenBucket,
    candidate_rate: &mut TokenBucket,
) {
    let result = wire::parse_client_message(text, shared.config.limits.max_message_payload)
        .and_then(|msg| {
            let bucket = match msg.action {
                Action::IceCandidate => candidate_rate,
                Action::SdpOffer | Action::SdpAnswer => sdp_rate,
            };
            if !bucket.try_take(Instant::now()) {
                return Err(Rejection {
                    correlation_id: msg.correlation_id.clone(),
                    error_type: "ClientLimitExceededException",
                    status_code: 400,
                    description: format!(
                        "{} rate exceeded for this connection.",
                        msg.action.as_str()
                    ),
                });
            }
            route(shared, conn, msg)
        });
    if let Err(rejection) = result {
        tracing::debug!(connection = conn.id, reason = %rejection.description, "signaling message rejected");
        if let Some(frame) = wire::status_response(&rejection) {
            conn.send(Outbound::Text(frame));
        }
    }
}

fn route(shared: &Shared, conn: &Arc<Connection>, msg: ClientMessage) -> Result<(), Rejection> {
    let storage_enabled = shared
        .registry()
        .channel(ResourceRef::Arn(&conn.channel_arn))
        .map(|c| c.storage_enabled())
        .unwrap_or(false);
    if storage_enabled {
        // Storage mode: everything goes to the storage peer serving this socket's role.
        let input = PeerInput::Signal {
            action: msg.action,
            payload: msg.payload,
            correlation_id: msg.correlation_id,
            from: conn.clone(),
        };
        shared
            .sessions
            .deliver(&conn.channel_arn, &conn.role, input);
        return Ok(());
    }
    // Peer-to-peer mode: master → the named viewer; viewer → master, tagged with its id.
    let (target, sender) = match &conn.role {
        Role::Master => {
            let recipient = msg.recipient.clone().ok_or_else(|| Rejection {
                correlation_id: msg.correlation_id.clone(),
                error_type: "InvalidArgumentException",
                status_code: 400,
                description: "recipientClientId is required for messages from the master.".into(),
            })?;
            (Role::Viewer(recipient), None)
        }
        Role::Viewer(id) => (Role::Master, Some(id.as_str())),
    };
    let frame = wire::event(msg.action.as_str(), sender, &msg.payload);
    match shared.hub.find(&conn.channel_arn, &target) {
        Some(peer) => {
            peer.send(Outbound::Text(frame));
        }
        None => {
            // Kept for the channel's MessageTtlSeconds in case the recipient connects.
            let ttl = shared
                .registry()
                .channel(ResourceRef::Arn(&conn.channel_arn))
                .map(|c| c.message_ttl_seconds)
                .unwrap_or(60);
            let expires = Instant::now() + std::time::Duration::from_secs(u64::from(ttl));
            shared.hub.hold(&conn.channel_arn, &target, frame, expires);
        }
    }
    Ok(())
}
