//! JoinStorageSession and JoinStorageSessionAsViewer through the official Rust client
//! (`aws-sdk-kinesisvideowebrtcstorage`): every check and every error variant.

mod support;

use aws_sdk_kinesisvideo::types::ChannelRole;
use aws_sdk_kinesisvideowebrtcstorage::operation::join_storage_session::JoinStorageSessionError;
use aws_sdk_kinesisvideowebrtcstorage::operation::join_storage_session_as_viewer::JoinStorageSessionAsViewerError;
use serde_json::json;
use support::TestEmulator;

#[tokio::test]
async fn join_answers_200_and_every_error_variant_deserializes() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("join").await;
    let (_, _, webrtc) = emu.endpoints(&arn, ChannelRole::Master).await;
    let storage = emu.storage(&webrtc);

    let ok = storage
        .join_storage_session()
        .channel_arn(&arn)
        .send()
        .await;
    assert!(ok.is_ok(), "{ok:?}");

    let unknown = arn.replace("channel/join/", "channel/other/");
    let err = storage
        .join_storage_session()
        .channel_arn(&unknown)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, JoinStorageSessionError::ResourceNotFoundException(_)),
        "{err:?}"
    );

    let err = storage
        .join_storage_session()
        .channel_arn("not-an-arn")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, JoinStorageSessionError::InvalidArgumentException(_)),
        "{err:?}"
    );

    let plain = emu
        .control_plane()
        .create_signaling_channel()
        .channel_name("unmapped")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let err = storage
        .join_storage_session()
        .channel_arn(&plain)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match &err {
        JoinStorageSessionError::InvalidArgumentException(e) => {
            assert!(
                e.message().unwrap().contains("not mapped to a stream"),
                "{e:?}"
            )
        }
        other => panic!("expected InvalidArgumentException, got {other:?}"),
    }

    let mut wrong = emu.key();
    wrong.secret_access_key.push('x');
    let err = emu
        .storage_as(&webrtc, &wrong)
        .join_storage_session()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert!(matches!(
        err.into_service_error(),
        JoinStorageSessionError::AccessDeniedException(_)
    ));

    emu.fault(json!({"channel": "join", "fault": "CLIENT_LIMIT_EXCEEDED", "count": 1}))
        .await;
    let err = storage
        .join_storage_session()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            JoinStorageSessionError::ClientLimitExceededException(_)
        ),
        "{err:?}"
    );
    assert!(
        storage
            .join_storage_session()
            .channel_arn(&arn)
            .send()
            .await
            .is_ok(),
        "the fault is used up"
    );
}

#[tokio::test]
async fn most_recent_join_takes_precedence() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("twice").await;
    let (_, _, webrtc) = emu.endpoints(&arn, ChannelRole::Master).await;
    let storage = emu.storage(&webrtc);
    storage
        .join_storage_session()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    storage
        .join_storage_session()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    let sessions = emu
        .wait_for_sessions_json("first session superseded", |s| {
            s.iter()
                .any(|s| s["endReason"] == "superseded by a newer join")
        })
        .await;
    let live: Vec<_> = sessions.iter().filter(|s| s["state"] != "ENDED").collect();
    assert_eq!(live.len(), 1, "{sessions:#?}");
}

#[tokio::test]
async fn viewer_joins_are_capped_at_three_slots() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("viewers").await;
    let (_, _, webrtc) = emu.endpoints(&arn, ChannelRole::Viewer).await;
    let storage = emu.storage(&webrtc);
    for id in ["v1", "v2", "v3", "v1"] {
        storage
            .join_storage_session_as_viewer()
            .channel_arn(&arn)
            .client_id(id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
    }
    let err = storage
        .join_storage_session_as_viewer()
        .channel_arn(&arn)
        .client_id("v4")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match &err {
        JoinStorageSessionAsViewerError::ClientLimitExceededException(e) => {
            assert!(
                e.message()
                    .unwrap()
                    .contains("maximum number of viewers connected to the session"),
                "{e:?}"
            )
        }
        other => panic!("expected ClientLimitExceededException, got {other:?}"),
    }
    let err = storage
        .join_storage_session_as_viewer()
        .channel_arn(&arn)
        .client_id("bad id")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            JoinStorageSessionAsViewerError::InvalidArgumentException(_)
        ),
        "{err:?}"
    );

    let unknown = arn.replace("channel/viewers/", "channel/nobody/");
    let err = storage
        .join_storage_session_as_viewer()
        .channel_arn(&unknown)
        .client_id("v1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            JoinStorageSessionAsViewerError::ResourceNotFoundException(_)
        ),
        "{err:?}"
    );
    let mut wrong = emu.key();
    wrong.secret_access_key.push('x');
    let err = emu
        .storage_as(&webrtc, &wrong)
        .join_storage_session_as_viewer()
        .channel_arn(&arn)
        .client_id("v1")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        JoinStorageSessionAsViewerError::AccessDeniedException(_)
    ));
}

/// Issue #27 item 6: ended sessions are not kept forever in the inspection list (300 joins
/// used to leave 300 entries): the last `Limits::ended_sessions_kept` (100), newest kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspection_list_keeps_the_last_hundred_ended_sessions() {
    let kept = kvs_emulator::Limits::default().ended_sessions_kept;
    assert_eq!(kept, 100, "the documented bound");
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("many-joins").await;
    let (_, _, webrtc) = emu.endpoints(&arn, ChannelRole::Master).await;
    // No master socket: each session ends when its offer finds nobody, or at the next join.
    for _ in 0..300 {
        emu.join_master(&webrtc, &arn).await;
    }
    let sessions = emu
        .wait_for_sessions("every session ended", |s| {
            s.iter()
                .all(|s| s.state == kvs_emulator::SessionState::Ended)
                && s.iter().map(|s| s.id).max() == Some(300)
        })
        .await;
    assert_eq!(sessions.len(), kept);
    // The newest (sessions end in about the order they were joined).
    let ids: Vec<u64> = sessions.iter().map(|s| s.id).collect();
    assert!(
        ids.contains(&300) && ids.iter().all(|&id| id > 150),
        "{ids:?}"
    );
    let listed = emu.inspect("sessions").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(kept));
}
