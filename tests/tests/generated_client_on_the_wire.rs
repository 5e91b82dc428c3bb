//! The generated crate is used exactly as the official `aws-sdk-kinesisvideowebrtcstorage`: this
//! program uses only that crate's public API, and checks what goes on the wire (method, endpoint
//! from the BDD endpoint resolver, JSON body, SigV4 signature, user agent naming the crate's
//! version: 1.0.0 of `kvs_sdk_kinesisvideowebrtcstorage`, 1.109.0 under AWS's name)
//! and that the service's answers come back as the same typed results.

use std::sync::{Arc, Mutex};

use aws_sdk_kinesisvideowebrtcstorage::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesisvideowebrtcstorage::operation::join_storage_session::JoinStorageSessionError;
use aws_sdk_kinesisvideowebrtcstorage::{Client, Config};
use aws_smithy_http_client::test_util::infallible_client_fn;

const CHANNEL_ARN: &str =
    "arn:aws:kinesisvideo:us-west-2:123456789012:channel/front-door/1234567890123";

/// The requests a [`recording_client`] sent, with their bodies.
type Recorded = Arc<Mutex<Vec<http::Request<Vec<u8>>>>>;

/// A client whose HTTP layer records each request and answers with `status` and `body`.
fn recording_client(
    region: &str,
    status: u16,
    error_type: Option<&'static str>,
    body: &'static str,
) -> (Client, Recorded) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let http_client = infallible_client_fn(move |request: http::Request<_>| {
        let (parts, request_body) = request.into_parts();
        let bytes = request_body.bytes().unwrap_or_default().to_vec();
        record
            .lock()
            .unwrap()
            .push(http::Request::from_parts(parts, bytes));
        let mut response = http::Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(error_type) = error_type {
            response = response.header("x-amzn-errortype", error_type);
        }
        response.body(body).unwrap()
    });
    let config = Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .http_client(http_client)
        .build();
    (Client::from_conf(config), seen)
}

#[tokio::test]
async fn join_storage_session_sends_the_official_request() {
    let (storage, seen) = recording_client("us-west-2", 200, None, "");
    storage
        .join_storage_session()
        .channel_arn(CHANNEL_ARN)
        .send()
        .await
        .expect("a 200 answer is success");
    let requests = seen.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method(), "POST");
    assert_eq!(
        request.uri().to_string(),
        "https://kinesisvideo.us-west-2.amazonaws.com/joinStorageSession"
    );
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(body, serde_json::json!({ "channelArn": CHANNEL_ARN }));
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/json");
    let authorization = header("authorization");
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && authorization.contains("/us-west-2/kinesisvideo/aws4_request"),
        "{authorization}"
    );
    let user_agent = header("x-amz-user-agent");
    // The version regen gave the crate (model/model.lock.json), not a constant of the crate's.
    let lock = xtask::lock::ModelLock::read(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model/model.lock.json"
    )))
    .unwrap()
    .unwrap();
    let version = lock.krate.map_or("1.109.0".to_string(), |k| k.version);
    assert!(
        user_agent.contains(&format!("api/kinesisvideowebrtcstorage/{version}")),
        "{user_agent}"
    );
}

#[tokio::test]
async fn the_viewer_join_carries_its_client_id() {
    let (storage, seen) = recording_client("eu-central-1", 200, None, "");
    storage
        .join_storage_session_as_viewer()
        .channel_arn(CHANNEL_ARN)
        .client_id("viewer-1")
        .send()
        .await
        .unwrap();
    let request = &seen.lock().unwrap()[0];
    assert_eq!(
        request.uri().to_string(),
        "https://kinesisvideo.eu-central-1.amazonaws.com/joinStorageSessionAsViewer"
    );
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "channelArn": CHANNEL_ARN, "clientId": "viewer-1" })
    );
}

/// JoinStorageSession answered with `status` and `x-amzn-errortype: error_type`.
async fn join_error(
    status: u16,
    error_type: &'static str,
    body: &'static str,
) -> JoinStorageSessionError {
    let (storage, _) = recording_client("us-west-2", status, Some(error_type), body);
    storage
        .join_storage_session()
        .channel_arn(CHANNEL_ARN)
        .send()
        .await
        .unwrap_err()
        .into_service_error()
}

#[tokio::test]
async fn service_errors_come_back_typed() {
    let err = join_error(
        404,
        "ResourceNotFoundException",
        r#"{"message":"The channel does not exist"}"#,
    )
    .await;
    assert!(
        matches!(err, JoinStorageSessionError::ResourceNotFoundException(_)),
        "{err:?}"
    );
    assert_eq!(
        aws_sdk_kinesisvideowebrtcstorage::error::ProvideErrorMetadata::message(&err),
        Some("The channel does not exist")
    );
    let err = join_error(
        400,
        "ClientLimitExceededException",
        r#"{"message":"slow down"}"#,
    )
    .await;
    assert!(err.is_client_limit_exceeded_exception(), "{err:?}");
    let err = join_error(403, "AccessDeniedException", r#"{"message":"no"}"#).await;
    assert!(err.is_access_denied_exception(), "{err:?}");
}
