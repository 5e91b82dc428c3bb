//! The embedded TURN server: GetIceServerConfig (through the official Rust client) hands out
//! TURN REST credentials for it, and a storage session connects with relay-only ICE through it,
//! media and all.

mod support;

use aws_sdk_kinesisvideo::types::ChannelRole;
use aws_sdk_kinesisvideosignaling::types::IceServer;
use support::peer::{answer_and_run_over, Plan, Transport, VideoCodec};
use support::TestEmulator;

async fn turn_server(emu: &TestEmulator, channel_arn: &str, https: &str) -> IceServer {
    let sdk_config = emu.handle.sdk_config().expect("sdk config");
    let signaling = aws_sdk_kinesisvideosignaling::Client::from_conf(
        aws_sdk_kinesisvideosignaling::config::Builder::from(&sdk_config)
            .endpoint_url(https)
            .build(),
    );
    let reply = signaling
        .get_ice_server_config()
        .channel_arn(channel_arn)
        .send()
        .await
        .expect("GetIceServerConfig");
    let servers = reply.ice_server_list();
    assert_eq!(servers.len(), 1, "{servers:?}");
    servers[0].clone()
}

fn turn_uri(server: &IceServer) -> &str {
    server
        .uris()
        .iter()
        .find(|u| u.starts_with("turn:") && u.ends_with("?transport=udp"))
        .expect("a turn:...?transport=udp URI")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_session_connects_through_the_embedded_turn_relay_only() {
    let emu = TestEmulator::start().await;
    let mut master = emu.storage_master("turn-cam").await;
    let server = turn_server(&emu, &master.channel_arn, &master.https).await;
    assert_eq!(server.ttl(), Some(300));
    let username = server.username().expect("username");
    let (expiry, user) = username.split_once(':').expect("<expiry>:<user>");
    let expiry: u64 = expiry.parse().expect("expiry in unix seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 290..=now + 310).contains(&expiry),
        "valid for the TTL"
    );
    assert_eq!(user, "turn-cam.master");

    let relay = Transport::turn(
        turn_uri(&server),
        username,
        server.password().expect("password"),
    )
    .await
    .expect("TURN allocation with the GetIceServerConfig credentials");
    emu.join_master(&master.webrtc, &master.channel_arn).await;
    let report = answer_and_run_over(
        &mut master.ws,
        Plan {
            codec: VideoCodec::H264,
            loops: 1,
            send_video: true,
            send_audio: true,
        },
        relay,
    )
    .await;
    assert!(report.connected, "connected over the relay: {report:?}");
    assert_eq!(report.video_frames_sent, 75);

    let sessions = emu
        .wait_for_sessions_json("relayed frames counted", |s| {
            s.first()
                .is_some_and(|s| s["media"]["video"]["frames"].as_u64() >= Some(70))
        })
        .await;
    assert_eq!(sessions[0]["media"]["violations"], serde_json::json!([]));
    let turn = emu.inspect("turn").await;
    assert_eq!(turn["embedded"], true);
    let allocation = turn["allocations"]
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("one live allocation: {turn}"));
    assert_eq!(allocation["username"], username);
    assert!(
        allocation["relayedBytes"].as_u64() > Some(50_000),
        "the media went through the relay: {allocation}"
    );
}

#[tokio::test]
async fn the_turn_server_refuses_wrong_credentials() {
    let emu = TestEmulator::start().await;
    let (channel_arn, _) = emu.storage_channel("turn-auth").await;
    let (_, https, _) = emu.endpoints(&channel_arn, ChannelRole::Master).await;
    let server = turn_server(&emu, &channel_arn, &https).await;
    let username = server.username().unwrap();
    let uri = turn_uri(&server);
    let wrong_password = Transport::turn(uri, username, "bm90LXRoZS1wYXNzd29yZA==").await;
    assert!(wrong_password.is_err(), "a wrong password is refused");
    // The password is bound to the username, expiry included: extending it is refused too.
    let (expiry, user) = username.split_once(':').unwrap();
    let later = format!("{}:{user}", expiry.parse::<u64>().unwrap() + 3600);
    let forged = Transport::turn(uri, &later, server.password().unwrap()).await;
    assert!(forged.is_err(), "a forged expiry is refused");
    let turn = emu.inspect("turn").await;
    assert_eq!(turn["allocations"], serde_json::json!([]), "{turn}");
}
