//! The emulator's end-to-end tests share the workspace harness (`kvs-test-support`: the test
//! emulator, the official SDK clients, the raw wire and the recording checks) and add one
//! thing of their own: a device-side WebRTC peer (`peer`).

#![allow(dead_code, unused_imports)]

pub(crate) mod peer;

pub(crate) use kvs_test_support::raw::*;
pub(crate) use kvs_test_support::recording::*;
pub(crate) use kvs_test_support::{Service, StorageMaster, TestEmulator, WAIT};

/// An archived-media operation (`getHLSStreamingSessionURL`, `getImages`, …) called through
/// the SigV4 API with a JSON `body`, as a program calls it: the status and the body.
pub(crate) async fn archived_media_call(
    emulator: &TestEmulator,
    operation: &str,
    body: &str,
) -> (u16, String) {
    let url = format!("{}/{operation}", emulator.endpoint);
    let headers = signed_headers(&url, body.as_bytes(), &emulator.key(), &emulator.region);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k != "host" && k != "content-type")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, _, text) = emulator
        .http_raw_with("POST", &url, &headers, body.as_bytes())
        .await;
    (status, text)
}

/// The URL a `get*StreamingSessionURL` operation answered (the answer's one member).
pub(crate) async fn streaming_session_url(
    emulator: &TestEmulator,
    operation: &str,
    body: &str,
) -> String {
    let (status, text) = archived_media_call(emulator, operation, body).await;
    assert_eq!(status, 200, "{operation}: {text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    answer
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| panic!("{operation} answered {text}"))
        .to_owned()
}
