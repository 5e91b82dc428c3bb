//! Entry points for the workspace's fuzz targets (`crates/kvs-fuzz`), behind the `fuzzing`
//! feature: the parsers of what the endpoint and the configuration say, which are otherwise
//! private. Not part of the API.

use std::time::Duration;

use crate::fetch::{interpret, Endpoint, Request};
use crate::Error;

/// `Endpoint::parse`: the endpoint's host and port.
pub fn parse_endpoint(text: &str) -> Result<(String, u16), Error> {
    Endpoint::parse(text).map(|e| (e.host, e.port))
}

/// `interpret`: what the endpoint's answer (status and body) means; on success, the
/// credentials' access key id and expiration.
pub fn interpret_answer(
    status: u16,
    body: &[u8],
) -> Result<(String, std::time::SystemTime), Error> {
    let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let request = Request {
        endpoint: Endpoint {
            host: "c1a2b3.credentials.iot.us-west-2.amazonaws.com".into(),
            port: 443,
        },
        role_alias: "KvsCameraIoTRoleAlias".into(),
        thing_name: "front-door".into(),
        timeout: Duration::from_secs(5),
    };
    interpret(status, body, &request).map(|f| (f.access_key_id, f.expiration))
}
