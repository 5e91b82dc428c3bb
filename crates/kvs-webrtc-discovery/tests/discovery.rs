//! Discovery against kvs-emulator over real HTTPS: name and ARN resolution, the storage checks,
//! roles, caching (hit, miss, expiry, invalidation, single flight), wrong credentials, ICE
//! servers and joins.

use std::time::{Duration, SystemTime};

use aws_smithy_async::test_util::ManualTimeSource;
use kvs_test_support::TestEmulator;
use kvs_webrtc_discovery::{Client, Config, ErrorKind, Role};

fn client_with_clock(emu: &TestEmulator) -> (Client, ManualTimeSource) {
    let clock = ManualTimeSource::new(SystemTime::now());
    let config = Config::builder()
        .sdk_config(emu.sdk_config())
        .endpoint_ttl(Duration::from_secs(600))
        .time_source(clock.clone())
        .build();
    (Client::from_conf(config), clock)
}

#[tokio::test]
async fn a_channel_resolves_by_name_and_by_arn_to_the_same_endpoints() {
    let emu = TestEmulator::start().await;
    let arn = emu.create_storage_channel("cam-1");
    let client = Client::new(&emu.sdk_config());

    let by_name = client.discover().channel("cam-1").send().await.unwrap();
    // A client that has not seen the name asks the service by ARN.
    let fresh = Client::new(&emu.sdk_config());
    let by_arn = fresh.discover().channel(&arn).send().await.unwrap();
    assert!(!by_name.from_cache() && !by_arn.from_cache());

    for found in [&by_name, &by_arn] {
        assert_eq!(found.channel().arn().as_str(), arn);
        assert_eq!(found.channel().name(), "cam-1");
        assert_eq!(found.role(), Role::Master);
        let served = emu.handle.endpoints();
        assert_eq!(found.endpoints().wss(), served.wss);
        assert_eq!(found.endpoints().https(), served.https);
        assert_eq!(found.endpoints().webrtc(), Some(served.webrtc.as_str()));
        assert!(found
            .channel()
            .storage_stream_arn()
            .is_some_and(|s| s.contains(":stream/cam-1-stream/")));
        assert!(found.storage_client().is_some());
    }
    assert_eq!(emu.calls("describeSignalingChannel"), 2);
    assert_eq!(emu.calls("describeMediaStorageConfiguration"), 2);
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 2);
}

/// Sessions look a channel up by the name the user gave, then join and reconnect by its ARN:
/// the name's lookup serves the ARN too, and invalidating either drops both.
#[tokio::test]
async fn a_lookup_by_name_also_serves_the_channels_arn() {
    let emu = TestEmulator::start().await;
    let arn = emu.create_storage_channel("cam-alias");
    let client = Client::new(&emu.sdk_config());

    let by_name = client.discover().channel("cam-alias").send().await.unwrap();
    let by_arn = client.discover().channel(&arn).send().await.unwrap();
    assert!(!by_name.from_cache());
    assert!(
        by_arn.from_cache(),
        "the ARN is served by the name's lookup"
    );
    assert_eq!(by_arn.channel().arn().as_str(), arn);
    assert_eq!(by_arn.endpoints().wss(), by_name.endpoints().wss());
    // The viewer's endpoints are not the master's: no alias across roles.
    let viewer = client
        .discover()
        .channel(&arn)
        .role(Role::Viewer)
        .send()
        .await
        .unwrap();
    assert!(!viewer.from_cache());
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 2);

    // A join by ARN, as the ingestion does after discovering by name, asks nothing again.
    client
        .join_storage_session()
        .channel(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(emu.calls("describeSignalingChannel"), 2);
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 2);

    client.invalidate_endpoints(&kvs_webrtc_discovery::ChannelId::parse("cam-alias").unwrap());
    assert!(!client
        .discover()
        .channel(&arn)
        .send()
        .await
        .unwrap()
        .from_cache());
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 3);
}

#[tokio::test]
async fn master_and_viewer_endpoints_are_separate_lookups() {
    let emu = TestEmulator::start().await;
    emu.create_storage_channel("cam-roles");
    let client = Client::new(&emu.sdk_config());

    let master = client.discover().channel("cam-roles").send().await.unwrap();
    let viewer = client
        .discover()
        .channel("cam-roles")
        .role(Role::Viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(master.role(), Role::Master);
    assert_eq!(viewer.role(), Role::Viewer);
    assert!(!viewer.from_cache());
    assert!(viewer.endpoints().webrtc().is_some());
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 2);
    assert_eq!(client.endpoint_cache_stats().misses, 2);
}

#[tokio::test]
async fn a_channel_without_a_mapped_stream_names_the_fix() {
    let emu = TestEmulator::start().await;
    emu.channel("no-stream").await;
    let client = Client::new(&emu.sdk_config());

    let err = client
        .discover()
        .channel("no-stream")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoStreamMapped, "{err}");
    let message = err.to_string();
    assert!(message.contains("`no-stream`"), "{message}");
    assert!(
        message.contains("UpdateMediaStorageConfiguration"),
        "{message}"
    );
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 0);

    // Without the storage requirement the channel is a plain P2P channel.
    let p2p = client
        .discover()
        .channel("no-stream")
        .require_storage(false)
        .send()
        .await
        .unwrap();
    assert!(p2p.endpoints().webrtc().is_none());
    assert!(p2p.storage_client().is_none());
}

#[tokio::test]
async fn a_channel_with_storage_disabled_names_the_fix() {
    let emu = TestEmulator::start().await;
    let channel = emu.channel("disabled").await;
    let stream = emu.stream("disabled-stream").await;
    emu.set_storage(&channel, Some(&stream), false).await;
    let client = Client::new(&emu.sdk_config());

    let err = client
        .discover()
        .channel("disabled")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageDisabled, "{err}");
    let message = err.to_string();
    assert!(message.contains("`disabled`"), "{message}");
    assert!(message.contains("Status ENABLED"), "{message}");
}

#[tokio::test]
async fn an_unknown_channel_is_not_found() {
    let emu = TestEmulator::start().await;
    let client = Client::new(&emu.sdk_config());
    let err = client
        .discover()
        .channel("nobody")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ChannelNotFound, "{err}");
    assert_eq!(err.service_code(), Some("ResourceNotFoundException"));
    assert!(err
        .to_string()
        .contains("DescribeSignalingChannel for `nobody`"));
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn bad_input_is_refused_before_any_call() {
    let emu = TestEmulator::start().await;
    let client = Client::new(&emu.sdk_config());
    let cases = [
        client.discover().send().await.unwrap_err(),
        client
            .discover()
            .channel("has space")
            .send()
            .await
            .unwrap_err(),
        client
            .discover()
            .channel("arn:aws:kinesisvideo:us-west-2:1:stream/x/1")
            .send()
            .await
            .unwrap_err(),
        client
            .join_storage_session_as_viewer()
            .channel("cam")
            .client_id("AWS_viewer")
            .send()
            .await
            .unwrap_err(),
        client
            .join_storage_session_as_viewer()
            .channel("cam")
            .send()
            .await
            .unwrap_err(),
        client
            .ice_servers()
            .channel("cam")
            .client_id("x".repeat(257))
            .send()
            .await
            .unwrap_err(),
    ];
    for err in cases {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.service_code().is_none());
    }
    assert!(emu.handle.calls().is_empty(), "{:?}", emu.handle.calls());
}

#[tokio::test]
async fn wrong_credentials_are_access_denied() {
    let emu = TestEmulator::start().await;
    emu.create_storage_channel("cam-creds");
    let wrong = aws_credential_types::Credentials::new(
        &emu.handle.access_key().access_key_id,
        "not-the-secret",
        None,
        None,
        "test",
    );
    let sdk_config = emu
        .sdk_config()
        .to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(wrong))
        .build();
    let err = Client::new(&sdk_config)
        .discover()
        .channel("cam-creds")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
}

#[tokio::test]
async fn lookups_are_cached_until_the_ttl_and_invalidated_on_request() {
    let emu = TestEmulator::start().await;
    let arn = emu.create_storage_channel("cam-cache");
    let (client, clock) = client_with_clock(&emu);

    let first = client.discover().channel("cam-cache").send().await.unwrap();
    let second = client.discover().channel("cam-cache").send().await.unwrap();
    assert!(!first.from_cache());
    assert!(second.from_cache());
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 1);

    clock.advance(Duration::from_secs(599));
    assert!(cached(&client, "cam-cache").await);
    clock.advance(Duration::from_secs(1));
    assert!(!cached(&client, "cam-cache").await);
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 2);

    // Invalidation by ARN also drops the entry looked up by name.
    client.invalidate_endpoints(&kvs_webrtc_discovery::ChannelId::parse(&arn).unwrap());
    assert!(!cached(&client, "cam-cache").await);
    assert!(!client
        .discover()
        .channel("cam-cache")
        .force_refresh(true)
        .send()
        .await
        .unwrap()
        .from_cache());
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 4);
    let stats = client.endpoint_cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.invalidations), (2, 4, 1));
}

#[tokio::test]
async fn concurrent_callers_share_one_lookup() {
    let emu = TestEmulator::start().await;
    emu.create_storage_channel("cam-many");
    let client = Client::new(&emu.sdk_config());
    let lookups: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.discover().channel("cam-many").send().await })
        })
        .collect();
    for lookup in lookups {
        lookup.await.unwrap().unwrap();
    }
    assert_eq!(emu.calls("describeSignalingChannel"), 1);
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 1);
    assert_eq!(client.endpoint_cache_stats().hits, 15);
}

#[tokio::test]
async fn joins_use_the_webrtc_endpoint_and_map_throttling() {
    let emu = TestEmulator::start().await;
    let arn = emu.create_storage_channel("cam-join");
    let client = Client::new(&emu.sdk_config());

    let joined = client
        .join_storage_session()
        .channel("cam-join")
        .send()
        .await
        .unwrap();
    assert_eq!(
        joined
            .discovery()
            .expect("discovered")
            .channel()
            .arn()
            .as_str(),
        arn
    );
    client
        .join_storage_session_as_viewer()
        .channel("cam-join")
        .client_id("viewer-1")
        .send()
        .await
        .unwrap();
    assert_eq!(emu.calls("joinStorageSession"), 1);
    assert_eq!(emu.calls("joinStorageSessionAsViewer"), 1);

    emu.handle
        .inject_fault(
            serde_json::json!({ "channel": "cam-join", "fault": "CLIENT_LIMIT_EXCEEDED" }),
        )
        .unwrap();
    let err = client
        .join_storage_session()
        .channel("cam-join")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
    // Throttling says nothing about the cache: no second lookup, no retry.
    assert_eq!(emu.calls("joinStorageSession"), 2);
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 2);
}

#[tokio::test]
async fn a_stale_entry_is_dropped_and_the_join_retried_once() {
    let emu = TestEmulator::start().await;
    let old_arn = emu.create_storage_channel("cam-stale");
    let client = Client::new(&emu.sdk_config());
    client.discover().channel("cam-stale").send().await.unwrap();

    // The channel is deleted and created again: same name, new ARN.
    emu.control_plane()
        .delete_signaling_channel()
        .channel_arn(&old_arn)
        .send()
        .await
        .unwrap();
    let new_arn = emu.channel("cam-stale").await;
    let stream = emu.stream("cam-stale-2").await;
    emu.set_storage(&new_arn, Some(&stream), true).await;
    assert_ne!(old_arn, new_arn);

    let joined = client
        .join_storage_session()
        .channel("cam-stale")
        .send()
        .await
        .unwrap();
    assert_eq!(
        joined
            .discovery()
            .expect("discovered")
            .channel()
            .arn()
            .as_str(),
        new_arn
    );
    assert!(!joined.discovery().expect("discovered").from_cache());
    assert_eq!(
        emu.calls("joinStorageSession"),
        2,
        "one refused, one retried"
    );
    assert_eq!(client.endpoint_cache_stats().invalidations, 1);

    // Storage switched off after a lookup: the retry reports the real reason.
    emu.set_storage(&new_arn, Some(&stream), false).await;
    let err = client
        .join_storage_session()
        .channel("cam-stale")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageDisabled, "{err}");
}

#[tokio::test]
async fn ice_servers_are_cached_until_ttl_minus_grace_and_refreshable() {
    let emu = TestEmulator::start().await;
    let arn = emu.create_storage_channel("cam-ice");
    let (client, clock) = client_with_clock(&emu);

    let ice = client
        .ice_servers()
        .channel("cam-ice")
        .client_id("dev-1")
        .send()
        .await
        .unwrap();
    assert!(!ice.turn_servers().is_empty());
    // The endpoint lookup it made is the one discover() reuses.
    assert!(cached(&client, "cam-ice").await);
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 1);
    let turn = &ice.turn_servers()[0];
    assert_eq!(turn.ttl(), Duration::from_secs(300));
    assert!(!turn.uris().is_empty() && !turn.username().is_empty());
    assert!(!format!("{ice:?}").contains(turn.credential()));
    assert_eq!(
        ice.stun_url(),
        "stun:stun.kinesisvideo.us-west-2.amazonaws.com:443"
    );
    assert!(ice_cached(&client, "cam-ice").await);
    assert_eq!(emu.calls("getIceServerConfig"), 1);

    // 300 s TTL − 30 s grace.
    clock.advance(Duration::from_secs(269));
    assert!(ice_cached(&client, &arn).await);
    clock.advance(Duration::from_secs(1));
    assert!(!ice_cached(&client, &arn).await);
    assert_eq!(emu.calls("getIceServerConfig"), 2);

    // RECONNECT_ICE_SERVER: a forced refresh, or an invalidation.
    let refreshed = client
        .ice_servers()
        .channel("cam-ice")
        .client_id("dev-1")
        .force_refresh(true)
        .send()
        .await
        .unwrap();
    assert!(!refreshed.from_cache());
    client.invalidate_ice_servers(&kvs_webrtc_discovery::ChannelArn::parse(&arn).unwrap());
    assert!(!ice_cached(&client, "cam-ice").await);
    assert_eq!(emu.calls("getIceServerConfig"), 4);
}

async fn cached(client: &Client, channel: &str) -> bool {
    client
        .discover()
        .channel(channel)
        .send()
        .await
        .unwrap()
        .from_cache()
}

async fn ice_cached(client: &Client, channel: &str) -> bool {
    let servers = client.ice_servers().channel(channel).client_id("dev-1");
    servers.send().await.unwrap().from_cache()
}

/// One builder serves both storage calls: `.role(Role::Viewer).client_id(..)` is
/// JoinStorageSessionAsViewer, a master with a client id or a viewer without one is refused
/// before any request.
#[tokio::test]
async fn one_join_builder_serves_the_master_and_the_viewer() {
    let emu = TestEmulator::start().await;
    emu.create_storage_channel("cam-roles");
    let client = Client::new(&emu.sdk_config());
    client
        .join_storage_session()
        .channel("cam-roles")
        .role(Role::Viewer)
        .set_client_id(Some("viewer-7".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(emu.calls("joinStorageSessionAsViewer"), 1);
    assert_eq!(emu.calls("joinStorageSession"), 0);

    let err = client
        .join_storage_session()
        .channel("cam-roles")
        .client_id("viewer-7")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("is for a viewer"), "{err}");
    let err = client
        .join_storage_session()
        .channel("cam-roles")
        .role(Role::Viewer)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("needs the viewer's id"), "{err}");
    assert_eq!(
        emu.calls("joinStorageSessionAsViewer"),
        1,
        "nothing more was sent"
    );
}

/// With the WEBRTC endpoint given, the storage API is called there and nothing is looked up;
/// a channel name (which would need a lookup) is refused, and the service's refusal maps as
/// it does after discovery.
#[tokio::test]
async fn a_given_webrtc_endpoint_is_called_without_discovery() {
    let emu = TestEmulator::start().await;
    let arn = emu.create_storage_channel("cam-direct");
    let webrtc = emu.handle.endpoints().webrtc.clone();
    let client = Client::new(&emu.sdk_config());
    let joined = client
        .join_storage_session()
        .channel(&arn)
        .webrtc_endpoint_url(&webrtc)
        .send()
        .await
        .unwrap();
    assert!(joined.discovery().is_none());
    assert_eq!(emu.calls("joinStorageSession"), 1);
    assert_eq!(emu.calls("describeSignalingChannel"), 0);
    assert_eq!(emu.calls("getSignalingChannelEndpoint"), 0);

    let err = client
        .join_storage_session()
        .channel("cam-direct")
        .webrtc_endpoint_url(&webrtc)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("give the channel's ARN"), "{err}");

    let unknown = arn.replace("cam-direct", "cam-gone");
    let err = client
        .join_storage_session()
        .channel(&unknown)
        .webrtc_endpoint_url(&webrtc)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ChannelNotFound, "{err}");
    assert!(
        err.to_string().contains(&webrtc),
        "names the endpoint: {err}"
    );
}
