//! Our presigned URL equals the one the AWS KVS WebRTC JS SDK's `SigV4RequestSigner` makes
//! (an independent implementation, run under Node) for fixed credentials, time and region.
//! The npm package is the one `.ci/run` installs for kvs-emulator's JS test.

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use kvs_webrtc_signaling::presign::{presign, PresignInput};

struct Case {
    endpoint: &'static str,
    channel_arn: &'static str,
    client_id: Option<&'static str>,
    region: &'static str,
    session_token: Option<&'static str>,
    epoch_secs: u64,
}

const CASES: &[Case] = &[
    Case {
        endpoint: "wss://v-ef08a1db.kinesisvideo.us-east-1.amazonaws.com",
        channel_arn: "arn:aws:kinesisvideo:us-east-1:123456789012:channel/front-door/1700000000000",
        client_id: None,
        region: "us-east-1",
        session_token: Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+abc/def=="),
        epoch_secs: 1_575_158_400,
    },
    Case {
        endpoint: "wss://v-1234abcd.kinesisvideo.eu-west-1.amazonaws.com",
        channel_arn: "arn:aws:kinesisvideo:eu-west-1:210987654321:channel/cam_2.b-c/1600000000001",
        client_id: Some("viewer-7.a_b"),
        region: "eu-west-1",
        session_token: None,
        epoch_secs: 1_763_700_000,
    },
    Case {
        endpoint: "wss://127.0.0.1:45678",
        channel_arn: "arn:aws-cn:kinesisvideo:cn-north-1:111122223333:channel/local/1",
        client_id: Some("v1"),
        region: "cn-north-1",
        session_token: Some("token"),
        epoch_secs: 1_800_000_123,
    },
];

const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn js_url(case: &Case) -> String {
    let node_modules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kvs-emulator/tests/js/node_modules"
    );
    let input = serde_json::json!({
        "endpoint": case.endpoint,
        "channelArn": case.channel_arn,
        "clientId": case.client_id,
        "region": case.region,
        "accessKeyId": ACCESS_KEY_ID,
        "secretAccessKey": SECRET,
        "sessionToken": case.session_token,
        "epochMillis": case.epoch_secs * 1000,
    });
    let output = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/presign.js"))
        .arg(input.to_string())
        .env("NODE_PATH", node_modules)
        .output()
        .expect("node runs (install Node.js; .ci/run does)");
    assert!(
        output.status.success(),
        "the JS signer failed (run `npm ci --legacy-peer-deps` in crates/kvs-emulator/tests/js): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `(scheme://host/path, sorted query pairs)`: the JS signer orders its parameters differently.
fn normalized(url: &str) -> (String, Vec<(String, String)>) {
    let (base, query) = url.split_once('?').expect("a query");
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').expect("name=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    pairs.sort();
    (base.trim_end_matches('/').to_owned(), pairs)
}

#[test]
fn our_presigned_url_equals_the_js_sdk_signers() {
    for case in CASES {
        let credentials = Credentials::new(
            ACCESS_KEY_ID,
            SECRET,
            case.session_token.map(str::to_owned),
            None,
            "test",
        );
        let ours = presign(&PresignInput {
            endpoint: case.endpoint,
            channel_arn: case.channel_arn,
            client_id: case.client_id,
            region: case.region,
            credentials: &credentials,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(case.epoch_secs),
            expires_in: Duration::from_secs(299),
        })
        .unwrap();
        let theirs = js_url(case);
        let (our_base, our_query) = normalized(ours.as_str());
        let (their_base, their_query) = normalized(&theirs);
        assert_eq!(our_base, their_base, "{}", case.endpoint);
        assert_eq!(our_query, their_query, "{}", case.endpoint);
        assert!(our_query.iter().any(|(k, _)| k == "X-Amz-Signature"));
    }
}
