//! The control plane through the official `aws-sdk-kinesisvideo` client: resources, mapping,
//! endpoints, and errors deserialized to their typed variants.

mod support;

use std::time::{Duration, SystemTime};

use aws_sdk_kinesisvideo::error::ProvideErrorMetadata;
use aws_sdk_kinesisvideo::operation::describe_signaling_channel::DescribeSignalingChannelError;
use aws_sdk_kinesisvideo::operation::get_signaling_channel_endpoint::GetSignalingChannelEndpointError;
use aws_sdk_kinesisvideo::operation::update_media_storage_configuration::UpdateMediaStorageConfigurationError;
use aws_sdk_kinesisvideo::types::{
    ChannelProtocol, ChannelRole, MediaStorageConfiguration, MediaStorageConfigurationStatus,
    SingleMasterChannelEndpointConfiguration,
};
use kvs_emulator::AccessKey;
use support::TestEmulator;

fn storage(
    stream_arn: Option<&str>,
    status: MediaStorageConfigurationStatus,
) -> MediaStorageConfiguration {
    MediaStorageConfiguration::builder()
        .set_stream_arn(stream_arn.map(str::to_owned))
        .status(status)
        .build()
        .unwrap()
}

#[tokio::test]
async fn channels_streams_and_storage_mapping() {
    let emu = TestEmulator::start().await;
    let kv = emu.control_plane();
    let arn = kv
        .create_signaling_channel()
        .channel_name("cam-1")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    assert!(
        arn.starts_with("arn:aws:kinesisvideo:us-west-2:111122223333:channel/cam-1/"),
        "{arn}"
    );

    let by_name = kv
        .describe_signaling_channel()
        .channel_name("cam-1")
        .send()
        .await
        .unwrap();
    let by_arn = kv
        .describe_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    let info = by_name.channel_info.unwrap();
    assert_eq!(info.channel_arn(), Some(arn.as_str()));
    assert_eq!(by_arn.channel_info.unwrap().channel_name(), Some("cam-1"));
    assert_eq!(info.channel_status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(
        info.single_master_configuration()
            .and_then(|c| c.message_ttl_seconds()),
        Some(60)
    );

    let off = kv
        .describe_media_storage_configuration()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    let off = off.media_storage_configuration.unwrap();
    assert_eq!(off.status(), &MediaStorageConfigurationStatus::Disabled);
    assert_eq!(off.stream_arn(), None);

    let stream_arn = kv
        .create_stream()
        .stream_name("cam-1-stream")
        .data_retention_in_hours(2)
        .send()
        .await
        .unwrap()
        .stream_arn
        .unwrap();
    let described = kv
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap()
        .stream_info
        .unwrap();
    assert_eq!(described.data_retention_in_hours(), Some(2));
    kv.update_media_storage_configuration()
        .channel_arn(&arn)
        .media_storage_configuration(storage(
            Some(&stream_arn),
            MediaStorageConfigurationStatus::Enabled,
        ))
        .send()
        .await
        .unwrap();
    let on = kv
        .describe_media_storage_configuration()
        .channel_name("cam-1")
        .send()
        .await
        .unwrap();
    let on = on.media_storage_configuration.unwrap();
    assert_eq!(on.status(), &MediaStorageConfigurationStatus::Enabled);
    assert_eq!(on.stream_arn(), Some(stream_arn.as_str()));

    kv.update_media_storage_configuration()
        .channel_arn(&arn)
        .media_storage_configuration(storage(None, MediaStorageConfigurationStatus::Disabled))
        .send()
        .await
        .unwrap();
    let again = kv
        .describe_media_storage_configuration()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.media_storage_configuration.unwrap().status(),
        &MediaStorageConfigurationStatus::Disabled
    );

    kv.delete_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    let gone = kv
        .describe_signaling_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            gone,
            DescribeSignalingChannelError::ResourceNotFoundException(_)
        ),
        "{gone:?}"
    );
}

#[tokio::test]
async fn endpoints_per_role_and_protocol() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("ep").await;
    let (wss, https, webrtc) = emu.endpoints(&arn, ChannelRole::Master).await;
    assert!(wss.starts_with("wss://127.0.0.1:"), "{wss}");
    assert!(https.starts_with("https://127.0.0.1:"), "{https}");
    assert!(webrtc.starts_with("https://127.0.0.1:"), "{webrtc}");
    assert_eq!(
        emu.endpoints(&arn, ChannelRole::Viewer).await,
        (wss, https, webrtc)
    );

    let kv = emu.control_plane();
    let plain = kv
        .create_signaling_channel()
        .channel_name("p2p")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let err = kv
        .get_signaling_channel_endpoint()
        .channel_arn(&plain)
        .single_master_channel_endpoint_configuration(
            SingleMasterChannelEndpointConfiguration::builder()
                .protocols(ChannelProtocol::Webrtc)
                .role(ChannelRole::Master)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            GetSignalingChannelEndpointError::InvalidArgumentException(_)
        ),
        "{err:?}"
    );
    assert!(
        err.message()
            .unwrap()
            .contains("UpdateMediaStorageConfiguration"),
        "{err:?}"
    );
}

#[tokio::test]
async fn errors_are_the_typed_errors_aws_returns() {
    let emu = TestEmulator::start().await;
    let kv = emu.control_plane();

    let missing = kv
        .describe_signaling_channel()
        .channel_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            missing,
            DescribeSignalingChannelError::ResourceNotFoundException(_)
        ),
        "{missing:?}"
    );
    assert_eq!(
        missing.message(),
        Some("The requested channel is not found or not active.")
    );
    assert!(missing.meta().extra("aws_request_id").is_some() || missing.meta().code().is_some());

    let bad_arn = kv
        .describe_signaling_channel()
        .channel_arn("arn:aws:s3:::bucket")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            bad_arn,
            DescribeSignalingChannelError::InvalidArgumentException(_)
        ),
        "{bad_arn:?}"
    );

    let mut wrong = emu.key();
    wrong.secret_access_key.push('x');
    let denied = emu
        .control_plane_as(&wrong)
        .describe_signaling_channel()
        .channel_name("nope")
        .send()
        .await
        .unwrap_err();
    let raw_status = denied.raw_response().map(|r| r.status().as_u16());
    let denied = denied.into_service_error();
    assert!(
        matches!(
            denied,
            DescribeSignalingChannelError::AccessDeniedException(_)
        ),
        "{denied:?}"
    );
    assert_eq!(raw_status, Some(401));

    let stranger = AccessKey::new("AKIAUNKNOWN000000000", "secret");
    let denied = emu
        .control_plane_as(&stranger)
        .describe_signaling_channel()
        .channel_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            denied,
            DescribeSignalingChannelError::AccessDeniedException(_)
        ),
        "{denied:?}"
    );

    let arn = kv
        .create_signaling_channel()
        .channel_name("c")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    let dup = kv
        .create_signaling_channel()
        .channel_name("c")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(dup.code(), Some("ResourceInUseException"));

    let no_retention = kv
        .create_stream()
        .stream_name("s0")
        .send()
        .await
        .unwrap()
        .stream_arn
        .unwrap();
    let err = kv
        .update_media_storage_configuration()
        .channel_arn(&arn)
        .media_storage_configuration(storage(
            Some(&no_retention),
            MediaStorageConfigurationStatus::Enabled,
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            UpdateMediaStorageConfigurationError::NoDataRetentionException(_)
        ),
        "{err:?}"
    );

    let kept = kv
        .create_stream()
        .stream_name("s1")
        .data_retention_in_hours(1)
        .send()
        .await
        .unwrap()
        .stream_arn
        .unwrap();
    let other = kv
        .create_signaling_channel()
        .channel_name("d")
        .send()
        .await
        .unwrap()
        .channel_arn
        .unwrap();
    for (channel, expect_ok) in [(&arn, true), (&other, false)] {
        let result = kv
            .update_media_storage_configuration()
            .channel_arn(channel)
            .media_storage_configuration(storage(
                Some(&kept),
                MediaStorageConfigurationStatus::Enabled,
            ))
            .send()
            .await;
        match (expect_ok, result) {
            (true, Ok(_)) => {}
            (false, Err(e)) => assert!(matches!(
                e.into_service_error(),
                UpdateMediaStorageConfigurationError::ResourceInUseException(_)
            )),
            (expect, got) => panic!("expected ok={expect}, got {got:?}"),
        }
    }
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_refused_with_413() {
    let emu = TestEmulator::start_with(|b| b.limits(|l| l.max_request_body = 4096)).await;
    let url = format!("{}/describeSignalingChannel", emu.endpoint);
    let (status, body) = emu.http_raw("POST", &url, &vec![b' '; 10_000]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("4096"), "{body}");
    // Under the limit the request goes on to authentication (unsigned: refused as such).
    let (status, _) = emu.http_raw("POST", &url, b"{}").await;
    assert_ne!(status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_channel_rates_refuse_with_client_limit_exceeded() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("busy-cam").await;
    let (quiet, _) = emu.storage_channel("quiet-cam").await;
    // The SDK's standard retry does not retry ClientLimitExceededException, so each call is one
    // request. 20 at once on a channel allowed 5/s: the burst of 5 passes, the rest are refused.
    let kv = emu.control_plane();
    let calls = (0..20).map(|_| kv.describe_signaling_channel().channel_arn(&arn).send());
    let results = futures_util::future::join_all(calls).await;
    let passed = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!((5..=7).contains(&passed), "{passed} passed");
    for err in &refused {
        let err = err.as_service_error().expect("a service error");
        assert!(err.is_client_limit_exceeded_exception(), "{err:?}");
        assert!(err.message().unwrap_or_default().contains("throttled"));
    }
    // The channel named by name shares the ARN's bucket; another channel has its own.
    let by_name = kv
        .describe_signaling_channel()
        .channel_name("busy-cam")
        .send()
        .await;
    assert!(by_name.is_err(), "same channel, same bucket");
    kv.describe_signaling_channel()
        .channel_arn(&quiet)
        .send()
        .await
        .expect("another channel is not throttled");
    assert_eq!(emu.handle.calls()["describeSignalingChannel"], 22);
}

#[tokio::test]
async fn throttling_can_be_turned_off() {
    let emu =
        TestEmulator::start_with(|b| b.throttling(kvs_emulator::Throttling::disabled())).await;
    let (arn, _) = emu.storage_channel("free-cam").await;
    let kv = emu.control_plane();
    let calls = (0..20).map(|_| kv.describe_signaling_channel().channel_arn(&arn).send());
    for result in futures_util::future::join_all(calls).await {
        result.expect("no rate limit");
    }
}

/// A control-plane client whose clock is `offset` away from the emulator's.
fn skewed_client(
    emu: &TestEmulator,
    ahead: bool,
    offset: Duration,
) -> aws_sdk_kinesisvideo::Client {
    let now = SystemTime::now();
    let then = if ahead { now + offset } else { now - offset };
    let config = aws_sdk_kinesisvideo::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_kinesisvideo::config::Region::new(
            emu.region.clone(),
        ))
        .endpoint_url(&emu.endpoint)
        .credentials_provider(emu.key().credentials())
        .http_client(emu.http_client())
        .time_source(aws_smithy_async::time::StaticTimeSource::new(then))
        .retry_config(aws_sdk_kinesisvideo::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kinesisvideo::Client::from_conf(config)
}

#[tokio::test]
async fn request_dates_must_be_within_five_minutes() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("clock-cam").await;
    let describe = |client: aws_sdk_kinesisvideo::Client| {
        let arn = arn.clone();
        async move {
            client
                .describe_signaling_channel()
                .channel_arn(arn)
                .send()
                .await
        }
    };
    for (ahead, minutes) in [(false, 4), (true, 4)] {
        describe(skewed_client(
            &emu,
            ahead,
            Duration::from_secs(minutes * 60),
        ))
        .await
        .unwrap_or_else(|e| panic!("{minutes} min skew (ahead: {ahead}) is accepted: {e:?}"));
    }
    for (ahead, text) in [
        (false, "Signature expired"),
        (true, "Signature not yet current"),
    ] {
        let err = describe(skewed_client(&emu, ahead, Duration::from_secs(10 * 60)))
            .await
            .expect_err("10 min skew is refused");
        let raw = err.raw_response().expect("an HTTP response");
        assert_eq!(raw.status().as_u16(), 403);
        assert!(
            raw.headers().get("date").is_some(),
            "a Date header lets clients correct their clock"
        );
        let message = err
            .as_service_error()
            .and_then(|e| e.message())
            .unwrap_or_default();
        assert!(message.contains(text), "{message}");
    }
}

/// Issue #27 item 3: connections that have sent nothing give their slot to a new one (they
/// used to hold it for the whole TLS handshake timeout, and the new one waited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_give_their_slot_to_a_new_one() {
    use tokio::io::AsyncReadExt;
    let emu = TestEmulator::start_with(|b| b.limits(|l| l.max_connections = 2)).await;
    let authority = emu.endpoint.trim_start_matches("https://").to_owned();
    // Two clients that connect and say nothing hold both slots of the control-plane listener.
    let mut idle_a = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let idle_b = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let url = format!("{}{}/calls", emu.endpoint, kvs_emulator::inspect::PREFIX);
    let (status, _) = tokio::time::timeout(Duration::from_secs(2), emu.http_raw("GET", &url, b""))
        .await
        .expect("a third connection is served at once");
    assert_eq!(status, 200);
    // The one that had waited longest was closed to make room.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(support::WAIT, idle_a.read(&mut buf))
        .await
        .expect("the oldest silent connection was closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    drop(idle_b);
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn browsers_get_cors_answers_on_every_https_listener() {
    let emu = TestEmulator::start().await;
    let (arn, _) = emu.storage_channel("web-cam").await;
    let (_, https, webrtc) = emu.endpoints(&arn, ChannelRole::Master).await;
    let origin = "http://localhost:8080";
    // What the AWS SDK for JavaScript v3 in a browser asks before a signed POST.
    let asked = "authorization,content-type,x-amz-date,x-amz-security-token,x-amz-user-agent,amz-sdk-invocation-id,amz-sdk-request";
    for (url, what) in [
        (
            format!("{}/describeSignalingChannel", emu.endpoint),
            "control plane",
        ),
        (
            format!("{https}/v1/get-ice-server-config"),
            "signaling REST",
        ),
        (format!("{webrtc}/joinStorageSession"), "storage API"),
    ] {
        let (status, headers, _) = emu
            .http_raw_with(
                "OPTIONS",
                &url,
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                    ("Access-Control-Request-Headers", asked),
                ],
                b"",
            )
            .await;
        assert_eq!(status, 200, "{what}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some(origin),
            "{what}"
        );
        assert!(
            header(&headers, "access-control-allow-methods").is_some_and(|m| m.contains("POST")),
            "{what}"
        );
        assert_eq!(
            header(&headers, "access-control-allow-headers"),
            Some(asked),
            "{what}: the requested headers are reflected"
        );
    }
    // An error answer lets the browser read the error type and request id.
    let (status, headers, body) = emu
        .http_raw_with(
            "POST",
            &format!("{}/describeSignalingChannel", emu.endpoint),
            &[("Origin", origin)],
            b"{}",
        )
        .await;
    assert_eq!(status, 401, "unsigned: {body}");
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(origin)
    );
    let exposed = header(&headers, "access-control-expose-headers").unwrap_or_default();
    for name in ["x-amzn-ErrorType", "x-amzn-RequestId"] {
        assert!(exposed.contains(name), "{exposed}");
        assert!(
            header(&headers, &name.to_ascii_lowercase()).is_some(),
            "{name} is sent"
        );
    }
}

/// Issue #13 item 7: any web site the developer visits can reach loopback through the browser.
/// The inspection and fault API grants no CORS, refuses pages of other origins (a `text/plain`
/// POST from one used to inject faults with 200) and `Origin: null`, and takes faults only as
/// JSON.
#[tokio::test]
async fn the_inspection_api_is_closed_to_other_origins_and_takes_faults_as_json() {
    let emu = TestEmulator::start().await;
    emu.handle.create_storage_channel("origin-cam").unwrap();
    let faults = format!("{}{}/faults", emu.endpoint, kvs_emulator::inspect::PREFIX);
    let sessions = format!("{}{}/sessions", emu.endpoint, kvs_emulator::inspect::PREFIX);
    let fault = br#"{"channel":"origin-cam","fault":"DROP_NEXT_OFFER"}"#;
    let find = |headers: &[(String, String)], name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    // The attack: a foreign page's simple (no-preflight) POST.
    let evil = [
        ("Origin", "https://evil.example"),
        ("Content-Type", "text/plain"),
    ];
    let (status, headers, body) = emu.http_raw_with("POST", &faults, &evil, fault).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(find(&headers, "access-control-allow-origin"), None);
    // Nothing was armed.
    let state: serde_json::Value = serde_json::from_str(
        &emu.http_raw(
            "GET",
            &format!("{}{}/state", emu.endpoint, kvs_emulator::inspect::PREFIX),
            b"",
        )
        .await
        .1,
    )
    .unwrap();
    assert!(
        state["faults"]
            .as_object()
            .is_none_or(|f| f.values().all(|c| c["dropOffers"] == 0)),
        "{state}"
    );

    // Reading from a foreign page: refused, and no CORS header that would let it read.
    let (status, headers, _) = emu
        .http_raw_with("GET", &sessions, &[("Origin", "https://evil.example")], b"")
        .await;
    assert_eq!(status, 403);
    assert_eq!(find(&headers, "access-control-allow-origin"), None);
    // `Origin: null` (sandboxed iframes of any web site, file:// pages) is refused too, for
    // reading and for faults (issue #27 item 5).
    let (status, _, _) = emu
        .http_raw_with("GET", &sessions, &[("Origin", "null")], b"")
        .await;
    assert_eq!(status, 403);
    let null_fault = [("Origin", "null"), ("Content-Type", "application/json")];
    let (status, _, body) = emu.http_raw_with("POST", &faults, &null_fault, fault).await;
    assert_eq!(status, 403, "{body}");
    // Programs (no Origin) and local pages (loopback hosts) are served, still without CORS
    // headers.
    for origin in [
        None,
        Some("http://127.0.0.1:8080"),
        Some("http://localhost:3000"),
    ] {
        let extra: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        let (status, headers, body) = emu.http_raw_with("GET", &sessions, &extra, b"").await;
        assert_eq!(status, 200, "{origin:?}: {body}");
        assert_eq!(
            find(&headers, "access-control-allow-origin"),
            None,
            "{origin:?}"
        );
    }
    // A fault must be JSON.
    let (status, _, body) = emu
        .http_raw_with("POST", &faults, &[("Content-Type", "text/plain")], fault)
        .await;
    assert_eq!(status, 415, "{body}");
    let (status, _, body) = emu.http_raw_with("POST", &faults, &[], fault).await;
    assert_eq!(status, 200, "{body}");
}

/// Issue #27 item 5: the storage-peer WebSocket refused nothing but foreign origins; a page
/// with `Origin: null` (any web site's sandboxed iframe) took over the channel's storage
/// sessions. Now it is refused, and the page that needs the socket is served by the emulator
/// itself, of its own origin, which is let in.
#[tokio::test]
async fn the_storage_peer_socket_refuses_origin_null_and_its_page_is_served_same_origin() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let emu = TestEmulator::start().await;
    emu.handle.create_storage_channel("peer-cam").unwrap();
    let ws_url = format!(
        "{}{}/storage-peer?channel=peer-cam",
        emu.endpoint.replace("https://", "wss://"),
        kvs_emulator::inspect::PREFIX
    );
    let connect = |origin: &str| {
        let mut request = ws_url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", http::HeaderValue::from_str(origin).unwrap());
        let connector = tokio_tungstenite::Connector::Rustls(emu.rustls_client_config());
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
    };
    match connect("null").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!(
            "Origin: null was let in: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    assert!(emu.handle.external_storage_peers().is_empty());
    // The emulator's own page, and a socket from its origin.
    let page = format!(
        "{}{}/storage-peer.html?channel=peer-cam",
        emu.endpoint,
        kvs_emulator::inspect::PREFIX
    );
    let (status, headers, body) = emu.http_raw_with("GET", &page, &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        body.contains("/_emulator/v1/storage-peer?channel="),
        "{body}"
    );
    let (_ws, response) = connect(&emu.endpoint)
        .await
        .expect("its own origin is let in");
    assert_eq!(response.status(), 101);
    kvs_test_support::wait_until("the page's peer to register", || {
        kvs_test_support::check(emu.handle.external_storage_peers(), |p| p.len() == 1)
    })
    .await;
}

/// Issue #27 item 5: every listener refuses a `Host` that is not the emulator's (DNS
/// rebinding: a web site re-points its name at 127.0.0.1; `Host: evil.example` used to get
/// 200), and answers its own addresses and names.
#[tokio::test]
async fn every_listener_refuses_hosts_that_are_not_the_emulator_s() {
    let emu = TestEmulator::start().await;
    let channel_arn = emu.handle.create_storage_channel("host-cam").unwrap();
    let (wss, https, webrtc) = emu
        .endpoints(
            &channel_arn,
            aws_sdk_kinesisvideo::types::ChannelRole::Master,
        )
        .await;
    let calls = format!("{}{}/calls", emu.endpoint, kvs_emulator::inspect::PREFIX);
    for url in [
        calls.clone(),
        format!("{}/describeSignalingChannel", emu.endpoint),
        format!("{https}/v1/get-ice-server-config"),
        format!("{}/", wss.replace("wss://", "https://")),
        format!("{webrtc}/joinStorageSession"),
    ] {
        let port = url
            .split(':')
            .nth(2)
            .and_then(|p| p.split('/').next())
            .unwrap();
        for host in [
            "evil.example",
            &format!("evil.example:{port}"),
            "127.0.0.1.nip.io",
        ] {
            let (status, _, body) = emu
                .http_raw_with("POST", &url, &[("Host", host)], b"{}")
                .await;
            assert_eq!(status, 421, "{url} with Host {host}: {body}");
            assert!(body.contains("own addresses and names"), "{body}");
        }
    }
    for host in [
        "localhost".to_owned(),
        format!(
            "localhost:{}",
            calls.split(':').nth(2).unwrap().split('/').next().unwrap()
        ),
        "127.0.0.1".to_owned(),
        "[::1]".to_owned(),
    ] {
        let (status, _, body) = emu
            .http_raw_with("GET", &calls, &[("Host", &host)], b"")
            .await;
        assert_eq!(status, 200, "Host {host}: {body}");
    }
}

/// Issue #13 item 8, the fault API's `count`: refused unless a whole number of at least 1, and
/// adding saturates (arming 4294967295 twice used to wrap around).
#[tokio::test]
async fn fault_counts_are_whole_positive_numbers_and_saturate() {
    let emu = TestEmulator::start().await;
    emu.handle.create_storage_channel("count-cam").unwrap();
    let faults = format!("{}{}/faults", emu.endpoint, kvs_emulator::inspect::PREFIX);
    for count in ["-1", "1.5", "0", "\"3\""] {
        let body =
            format!(r#"{{"channel":"count-cam","fault":"DROP_NEXT_OFFER","count":{count}}}"#);
        let (status, body) = emu.http_raw("POST", &faults, body.as_bytes()).await;
        assert_eq!(status, 400, "count {count}: {body}");
        assert!(body.contains("whole number of at least 1"), "{body}");
    }
    let max = r#"{"channel":"count-cam","fault":"DROP_NEXT_OFFER","count":4294967295}"#;
    emu.http_raw("POST", &faults, max.as_bytes()).await;
    let (status, body) = emu.http_raw("POST", &faults, max.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        reply["pending"]["dropOffers"], 4294967295u64,
        "saturated: {reply}"
    );
}

/// Issue #13 item 8: a body that does not frame (malformed chunked encoding) is a 400 with an
/// error type, not a 413 "larger than 1048576 bytes" without one.
#[tokio::test]
async fn a_malformed_chunked_body_is_a_400_with_an_error_type() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = TestEmulator::start().await;
    let authority = emu.endpoint.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(emu.rustls_client_config());
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!(
        "POST /describeSignalingChannel HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZZ\r\n{{}}\r\n0\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 400"), "{text}");
    assert!(
        text.contains("x-amzn-errortype: serializationexception"),
        "{text}"
    );
}

/// Issue #13 item 8: a 900 KB ARN is not echoed (or logged) in full.
#[tokio::test]
async fn a_huge_arn_is_shown_truncated() {
    let emu = TestEmulator::start().await;
    let huge = format!(
        "arn:aws:kinesisvideo:us-west-2:1:channel/{}/1",
        "x".repeat(900 * 1024)
    );
    let err = emu
        .control_plane()
        .describe_signaling_channel()
        .channel_arn(&huge)
        .send()
        .await
        .expect_err("refused");
    let message = aws_sdk_kinesisvideo::error::ProvideErrorMetadata::message(&err)
        .unwrap_or_default()
        .to_owned();
    assert!(message.len() < 2000, "{} bytes of message", message.len());
    assert!(
        message.contains(&format!("({} bytes)", huge.len())),
        "{message}"
    );
}

/// Issue #13 item 8: a member of the wrong JSON type is a SerializationException, as at AWS.
#[tokio::test]
async fn a_wrongly_typed_single_master_configuration_is_a_serialization_exception() {
    let emu = TestEmulator::start().await;
    let url = format!("{}/createSignalingChannel", emu.endpoint);
    let body = br#"{"ChannelName":"typed-cam","SingleMasterConfiguration":"x"}"#;
    let headers = support::signed_headers(&url, body, &emu.key(), &emu.region);
    let extra: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k != "host" && k != "content-type")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, response_headers, text) = emu.http_raw_with("POST", &url, &extra, body).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        header(&response_headers, "x-amzn-errortype").map(|t| t.split(':').next().unwrap_or(t)),
        Some("SerializationException"),
        "{text}"
    );
    // The channel was not created.
    let err = emu
        .control_plane()
        .describe_signaling_channel()
        .channel_name("typed-cam")
        .send()
        .await;
    assert!(err.is_err());
}

/// Issue #13 item 2: a request body that stops arriving is answered 408 after the body timeout,
/// and clients sending bodies slowly cannot take every connection slot: with every slot held
/// by such a client, a normal request is still answered at once (it used to wait 50 s and more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_time_out_and_cannot_take_every_connection_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = TestEmulator::start_with(|b| {
        b.limits(|l| {
            l.max_connections = 8;
            l.body_read_timeout = Duration::from_secs(1);
        })
    })
    .await;
    let authority = emu.endpoint.trim_start_matches("https://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..8 {
        let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(emu.rustls_client_config());
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let head = format!(
            "POST /describeSignalingChannel HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        slow.push(tls);
    }
    // Every slot is taken by a slow body; a normal request is answered all the same.
    let calls = format!("{}{}/calls", emu.endpoint, kvs_emulator::inspect::PREFIX);
    let (status, _) =
        tokio::time::timeout(Duration::from_secs(5), emu.http_raw("GET", &calls, b""))
            .await
            .expect("answered while the slow bodies hold their connections");
    assert_eq!(status, 200);
    // Each slow body gets an answer: 503 beyond half the slots, 408 after the timeout.
    let mut statuses = Vec::new();
    for mut tls in slow {
        let mut response = Vec::new();
        let read = tokio::time::timeout(support::WAIT, tls.read_to_end(&mut response)).await;
        assert!(read.is_ok(), "the slow connection was answered and closed");
        let text = String::from_utf8_lossy(&response).to_string();
        statuses.push(text.split(' ').nth(1).unwrap_or("").to_owned());
    }
    statuses.sort();
    // One whose head the emulator had not read yet when the GET came may have been closed to
    // make room for it (issue #27 item 3): no answer.
    assert!(
        statuses
            .iter()
            .all(|s| s == "408" || s == "503" || s.is_empty()),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| s.is_empty()).count() <= 1,
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|s| s == "408"), "{statuses:?}");
}

/// `ListStreams` as the SDK's paginator reads it: every stream once, by name, a page at a
/// time; a name prefix; and bad input refused with InvalidArgumentException.
#[tokio::test]
async fn list_streams_pages_by_name_and_filters_by_prefix() {
    use aws_sdk_kinesisvideo::types::{ComparisonOperator, StreamNameCondition};
    let emu = TestEmulator::start().await;
    let kv = emu.control_plane();
    for name in ["lobby-b", "yard", "lobby-a", "lobby-c", "dock"] {
        kv.create_stream()
            .stream_name(name)
            .data_retention_in_hours(24)
            .send()
            .await
            .unwrap();
    }
    let mut pages = 0;
    let mut names = Vec::new();
    let mut paginator = kv.list_streams().max_results(2).into_paginator().send();
    while let Some(page) = paginator.next().await {
        pages += 1;
        for info in page.unwrap().stream_info_list() {
            assert_eq!(info.data_retention_in_hours(), Some(24));
            assert!(info.stream_arn().unwrap().contains(":stream/"));
            names.push(info.stream_name().unwrap().to_owned());
        }
    }
    assert_eq!(names, ["dock", "lobby-a", "lobby-b", "lobby-c", "yard"]);
    assert_eq!(pages, 3, "pages of 2");

    let lobby = kv
        .list_streams()
        .stream_name_condition(
            StreamNameCondition::builder()
                .comparison_operator(ComparisonOperator::BeginsWith)
                .comparison_value("lobby-")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let lobby: Vec<_> = lobby
        .stream_info_list()
        .iter()
        .map(|s| s.stream_name().unwrap())
        .collect();
    assert_eq!(lobby, ["lobby-a", "lobby-b", "lobby-c"]);
    assert!(kv.list_streams().send().await.unwrap().next_token.is_none());

    for (request, fragment) in [
        (kv.list_streams().max_results(0), "maxResults"),
        (kv.list_streams().max_results(10_001), "maxResults"),
        (
            kv.list_streams().next_token("not-a-token"),
            "not a token ListStreams returned",
        ),
    ] {
        let e = request.send().await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidArgumentException"), "{e:?}");
        assert!(
            e.message().unwrap_or_default().contains(fragment),
            "{:?}",
            e.message()
        );
    }
}
