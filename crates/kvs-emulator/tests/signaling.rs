//! The signaling WebSocket: presigned connect (URLs made by `aws-sigv4`), refusals at upgrade,
//! the storage offer, STATUS_RESPONSE, lifetimes and injected faults.

mod support;

use std::time::{Duration, SystemTime};

use aws_sdk_kinesisvideo::types::ChannelRole;
use serde_json::json;
use support::{closed, decode_payload, next_json, presign, send_json, TestEmulator};
use tokio_tungstenite::tungstenite::Error as WsError;

fn refused_status(result: Result<support::Ws, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("expected a refusal, the socket opened"),
    }
}

#[tokio::test]
async fn presigned_connect_is_verified() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("sig").await;
    let (wss, _, _) = emu.endpoints(&arn, ChannelRole::Master).await;
    let region = emu.handle.region().to_owned();

    emu.connect(&wss, &arn, None)
        .await
        .expect("master connects");
    emu.connect(&wss, &arn, Some("viewer-1"))
        .await
        .expect("viewer connects");

    let mut wrong = emu.key();
    wrong.secret_access_key.push('x');
    let url = presign(
        &wss,
        &arn,
        None,
        &wrong,
        &region,
        SystemTime::now(),
        Duration::from_secs(299),
    );
    assert_eq!(
        refused_status(emu.connect_url(&url).await),
        403,
        "bad signature"
    );

    let old = SystemTime::now() - Duration::from_secs(600);
    let url = presign(
        &wss,
        &arn,
        None,
        &emu.key(),
        &region,
        old,
        Duration::from_secs(299),
    );
    assert_eq!(
        refused_status(emu.connect_url(&url).await),
        403,
        "expired URL"
    );

    let url = presign(
        &wss,
        &arn,
        None,
        &emu.key(),
        "eu-west-1",
        SystemTime::now(),
        Duration::from_secs(299),
    );
    assert_eq!(
        refused_status(emu.connect_url(&url).await),
        403,
        "wrong region in scope"
    );

    let unknown = arn.replace("channel/sig/", "channel/none/");
    assert_eq!(refused_status(emu.connect(&wss, &unknown, None).await), 404);
    assert_eq!(
        refused_status(emu.connect(&wss, &arn, Some("AWS_reserved")).await),
        400
    );

    let tampered = emu_url_with(
        &presign(
            &wss,
            &arn,
            None,
            &emu.key(),
            &region,
            SystemTime::now(),
            Duration::from_secs(299),
        ),
        "X-Amz-ChannelARN",
        &arn.replace("/sig/", "/sig2/"),
    );
    assert_eq!(
        refused_status(emu.connect_url(&tampered).await),
        403,
        "a changed signed parameter breaks the signature"
    );
}

fn emu_url_with(url: &str, param: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|kv| {
            if kv.starts_with(&format!("{param}=")) {
                format!("{param}={}", support::urlencode(value))
            } else {
                kv.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[tokio::test]
async fn session_token_must_be_signed_and_match() {
    let key = kvs_emulator::AccessKey::new("AKIATOKENTEST0000000", "tokensecret")
        .with_session_token("the-token");
    let emu = TestEmulator::start_with(|b| b.access_key(key.clone())).await;
    let (arn, _) = emu.storage_channel("tok").await;
    let (wss, _, _) = emu.endpoints(&arn, ChannelRole::Master).await;
    let region = emu.handle.region().to_owned();
    let url = presign(
        &wss,
        &arn,
        None,
        &key,
        &region,
        SystemTime::now(),
        Duration::from_secs(60),
    );
    assert!(
        url.contains("X-Amz-Security-Token=the-token"),
        "aws-sigv4 puts the token in the query"
    );
    emu.connect_url(&url).await.expect("signed token accepted");

    let other_token = key.clone().with_session_token("another-token");
    let url = presign(
        &wss,
        &arn,
        None,
        &other_token,
        &region,
        SystemTime::now(),
        Duration::from_secs(60),
    );
    assert_eq!(refused_status(emu.connect_url(&url).await), 403);
    let without =
        kvs_emulator::AccessKey::new(key.access_key_id.clone(), key.secret_access_key.clone());
    let url = presign(
        &wss,
        &arn,
        None,
        &without,
        &region,
        SystemTime::now(),
        Duration::from_secs(60),
    );
    assert_eq!(
        refused_status(emu.connect_url(&url).await),
        403,
        "the key needs its token"
    );
}

/// The `a=mid` of each m-line of `sdp`, in order.
fn offer_mids(sdp: &str) -> Vec<String> {
    let mut mids = Vec::new();
    let mut in_media = false;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            in_media = true;
            mids.push(String::new());
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            if in_media {
                *mids.last_mut().expect("inside an m-line") = mid.to_string();
            }
        }
    }
    mids
}

#[tokio::test]
async fn storage_offer_and_candidate_arrive_without_sender() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("offer").await;
    let (wss, _, webrtc) = emu.endpoints(&arn, ChannelRole::Master).await;
    let mut ws = emu.connect(&wss, &arn, None).await.unwrap();
    emu.join_master(&webrtc, &arn).await;
    let offer = next_json(&mut ws).await;
    assert_eq!(offer["messageType"], "SDP_OFFER");
    assert!(offer.get("senderClientId").is_none(), "{offer}");
    let payload = decode_payload(&offer);
    assert_eq!(payload["type"], "offer");
    assert!(payload["sdp"].as_str().unwrap().starts_with("v=0\r\n"));
    let candidate = next_json(&mut ws).await;
    assert_eq!(candidate["messageType"], "ICE_CANDIDATE");
    let c = decode_payload(&candidate);
    assert!(
        c["candidate"].as_str().unwrap().contains("127.0.0.1"),
        "{c}"
    );
    // The candidate names an m-line of the offer: its sdpMid is that m-line's a=mid.
    let mids = offer_mids(payload["sdp"].as_str().unwrap());
    let index = c["sdpMLineIndex"].as_u64().expect("sdpMLineIndex") as usize;
    assert_eq!(
        Some(c["sdpMid"].as_str().expect("sdpMid")),
        mids.get(index).map(String::as_str),
        "candidate {c} vs the offer's m-line mids {mids:?}"
    );

    emu.fault(json!({"channel": "offer", "fault": "CANDIDATES_BEFORE_OFFER"}))
        .await;
    emu.join_master(&webrtc, &arn).await;
    assert_eq!(next_json(&mut ws).await["messageType"], "ICE_CANDIDATE");
    assert_eq!(next_json(&mut ws).await["messageType"], "SDP_OFFER");

    emu.fault(json!({"channel": "offer", "fault": "DROP_NEXT_OFFER"}))
        .await;
    emu.join_master(&webrtc, &arn).await;
    emu.join_master(&webrtc, &arn).await;
    let next = next_json(&mut ws).await;
    assert_eq!(
        next["messageType"], "SDP_OFFER",
        "only the second join's offer arrives"
    );
    let sessions = emu.inspect("sessions").await;
    let offers: Vec<u64> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["offersSent"].as_u64().unwrap())
        .collect();
    assert_eq!(
        offers.iter().filter(|n| **n == 0).count(),
        1,
        "one session never sent its offer: {sessions:#}"
    );
}

#[tokio::test]
async fn invalid_messages_get_status_response_only_with_a_correlation_id() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("status").await;
    let (wss, _, _) = emu.endpoints(&arn, ChannelRole::Master).await;
    let mut ws = emu.connect(&wss, &arn, None).await.unwrap();

    send_json(
        &mut ws,
        &json!({"action": "SDP_ANSWER", "messagePayload": "not base64!", "correlationId": "c-1"}),
    )
    .await;
    let status = next_json(&mut ws).await;
    assert_eq!(status["messageType"], "STATUS_RESPONSE");
    assert_eq!(status["statusResponse"]["correlationId"], "c-1");
    assert_eq!(status["statusResponse"]["statusCode"], "400");
    assert_eq!(
        status["statusResponse"]["errorType"],
        "InvalidArgumentException"
    );

    // No correlation id: dropped silently. The next reply must belong to the message after it.
    send_json(
        &mut ws,
        &json!({"action": "BOGUS", "messagePayload": "eA=="}),
    )
    .await;
    let big = "A".repeat(10_004);
    send_json(
        &mut ws,
        &json!({"Action": "ICE_CANDIDATE", "MessagePayload": big, "CorrelationId": "c-2"}),
    )
    .await;
    let status = next_json(&mut ws).await;
    assert_eq!(
        status["statusResponse"]["correlationId"], "c-2",
        "C-SDK spelling is understood: {status}"
    );

    // Rate: SendIceCandidate is limited to 20 per second per connection.
    for i in 0..25 {
        send_json(&mut ws, &json!({"action": "ICE_CANDIDATE", "messagePayload": "eyJ9", "correlationId": format!("r{i}")})).await;
    }
    let status = next_json(&mut ws).await;
    assert_eq!(
        status["statusResponse"]["errorType"], "ClientLimitExceededException",
        "{status}"
    );
}

#[tokio::test]
async fn lifetimes_and_socket_faults() {
    let emu = TestEmulator::start_with(|b| {
        b.timings(|t| {
            t.signaling_idle_timeout = Duration::from_millis(400);
            t.go_away_grace = Duration::from_millis(100);
        })
    })
    .await;
    let (arn, _) = emu.storage_channel("life").await;
    let (wss, _, _) = emu.endpoints(&arn, ChannelRole::Master).await;

    let mut idle = emu.connect(&wss, &arn, Some("idle-viewer")).await.unwrap();
    assert_eq!(closed(&mut idle).await, "idle timeout");

    let mut ws = emu.connect(&wss, &arn, None).await.unwrap();
    let answer = emu
        .fault(json!({"channel": "life", "fault": "JUNK_FRAME"}))
        .await;
    assert_eq!(answer["sockets"], 1);
    let junk = next_json(&mut ws).await;
    assert!(
        junk.get("messageType").is_none() && junk["message"] == "Endpoint request timed out",
        "{junk}"
    );

    emu.fault(json!({"channel": "life", "fault": "RECONNECT_ICE_SERVER"}))
        .await;
    assert_eq!(
        next_json(&mut ws).await["messageType"],
        "RECONNECT_ICE_SERVER"
    );

    emu.fault(json!({"channel": "life", "fault": "GO_AWAY"}))
        .await;
    assert_eq!(next_json(&mut ws).await["messageType"], "GO_AWAY");
    assert_eq!(closed(&mut ws).await, "GO_AWAY grace period over");

    let mut first = emu.connect(&wss, &arn, None).await.unwrap();
    let _second = emu.connect(&wss, &arn, None).await.unwrap();
    assert_eq!(
        closed(&mut first).await,
        "replaced by a newer connection",
        "newest master wins"
    );

    let mut viewer = emu.connect(&wss, &arn, Some("v")).await.unwrap();
    emu.fault(json!({"channel": "life", "fault": "CLOSE_SOCKET", "clientId": "v"}))
        .await;
    assert_eq!(closed(&mut viewer).await, "closed by a fault");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_are_rate_limited_per_channel() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("rush").await;
    let (wss, _, _) = emu.endpoints(&arn, ChannelRole::Viewer).await;
    // ConnectAsViewer allows 3/s per channel: of 8 viewers connecting at once, the burst of 3
    // gets in and the rest are refused at the upgrade with ClientLimitExceeded (400).
    let ids: Vec<String> = (0..8).map(|n| format!("viewer-{n}")).collect();
    let attempts = ids.iter().map(|id| emu.connect(&wss, &arn, Some(id)));
    let results = futures_util::future::join_all(attempts).await;
    let opened = results.iter().filter(|r| r.is_ok()).count();
    assert!((3..=4).contains(&opened), "{opened} opened");
    for result in results.into_iter().filter(Result::is_err) {
        assert_eq!(refused_status(result), 400);
    }
    assert_eq!(emu.handle.calls()["connectAsViewer"], 8);
}

#[tokio::test]
async fn peer_to_peer_messages_wait_for_an_offline_master_within_the_message_ttl() {
    let emu = TestEmulator::start().await;
    let arn = emu
        .control_plane()
        .create_signaling_channel()
        .channel_name("p2p")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let wss = emu.handle.endpoints().wss.clone();
    let mut viewer = emu.connect(&wss, &arn, Some("v1")).await.expect("viewer");
    let offer = support::encode_payload(&json!({"type": "offer", "sdp": "v=0"}));
    send_json(
        &mut viewer,
        &json!({"action": "SDP_OFFER", "recipientClientId": "ignored", "messagePayload": offer}),
    )
    .await;
    let candidate = json!({"action": "ICE_CANDIDATE", "messagePayload": support::encode_payload(&json!({"candidate": ""}))});
    send_json(&mut viewer, &candidate).await;
    // Both are kept while nobody is there to receive them.
    kvs_test_support::wait_for("both messages held", || async {
        let held = emu.inspect("state").await["heldMessages"][arn.as_str()].clone();
        kvs_test_support::check(held, |held| *held == 2)
    })
    .await;

    let mut master = emu.connect(&wss, &arn, None).await.expect("master");
    let first = next_json(&mut master).await;
    assert_eq!(first["messageType"], "SDP_OFFER");
    assert_eq!(first["senderClientId"], "v1");
    assert_eq!(first["messagePayload"], offer.as_str());
    let second = next_json(&mut master).await;
    assert_eq!(second["messageType"], "ICE_CANDIDATE", "in the order sent");
}

/// Issue #13 item 3: signaling payloads are capped at 10,000 characters, so a frame far beyond
/// that is refused from its header (close 1009) instead of being buffered (a 56 MiB frame used
/// to cost 2.1 GB of RSS), and the emulator keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_with_close_1009() {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;

    let emu = TestEmulator::start().await;
    let mut master = emu.storage_master("big-frames").await;
    // A message of the largest legal payload still goes through (it is answered, not closed).
    let legal = "A".repeat(10_000);
    send_json(
        &mut master.ws,
        &json!({"action": "SDP_ANSWER", "messagePayload": legal, "correlationId": "c1"}),
    )
    .await;
    // 1 MiB in one frame: over the limit.
    let huge = format!(
        "{{\"action\":\"SDP_ANSWER\",\"messagePayload\":\"{}\"}}",
        "A".repeat(1 << 20)
    );
    let _ = master.ws.send(Message::text(huge)).await;
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let code = loop {
        match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut master.ws))
            .await
            .expect("the socket is closed in time")
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => break None,
        }
    };
    assert_eq!(code, Some(1009), "closed as too large");
    // Still serving: a new socket for the channel connects.
    let again = emu.storage_master("big-frames-2").await;
    drop(again);
}
