//! The signaling REST API on the channel HTTPS endpoint: `POST /v1/get-ice-server-config`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Method;
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};

use crate::api_error::{Api, ApiError};
use crate::http_server::HttpResponse;
use crate::http_util;
use crate::registry::ResourceRef;
use crate::shared::Shared;
use crate::validate;

/// The TTL AWS documents as fixed (§6.1). Clients refresh `grace` seconds before it.
pub(crate) const ICE_TTL_SECONDS: u64 = 300;

/// Serve one request on the channel HTTPS listener.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
    if req.method() == Method::OPTIONS {
        return http_util::preflight(req.headers());
    }
    let req = match http_util::read(req, shared.config.limits.max_request_body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if req.path != "/v1/get-ice-server-config" || req.method != Method::POST {
        return http_util::wrong_endpoint(&req.headers);
    }
    shared.calls.record("getIceServerConfig");
    let result = (|| {
        http_util::authenticate(
            &req,
            Api::SignalingRest,
            &shared.expectation(SystemTime::now()),
        )?;
        let body = http_util::json_body(&req.body)?;
        let arn = validate::required(&body, "ChannelARN")?;
        validate::arn("ChannelARN", arn)?;
        if let Some(client_id) = validate::optional(&body, "ClientId")? {
            validate::name("ClientId", client_id, 256)?;
        }
        match validate::optional(&body, "Service")? {
            None | Some("TURN") => {}
            Some(other) => {
                return Err(ApiError::invalid_argument(format!(
                    "Value '{other}' at 'service' failed to satisfy constraint: Member must satisfy enum value set: [TURN]"
                )))
            }
        }
        shared.registry().channel(ResourceRef::Arn(arn))?;
        Ok(ice_server_list(&shared.config.turn_uris))
    })();
    match result {
        Ok(value) => http_util::json(&value, &req.headers),
        Err(err) => http_util::error(Api::SignalingRest, &err, Some(&req.headers)),
    }
}

/// One ICE server entry in the form AWS returns: TURN REST credentials, TTL 300, never empty.
pub(crate) fn ice_server_list(turn_uris: &[String]) -> Value {
    let uris: Vec<String> = if turn_uris.is_empty() {
        // A syntactically valid entry that points at nothing: loopback ICE needs no relay, but
        // clients (the C SDK above all) refuse an empty list (§6.1, §8.4).
        vec![
            "turn:127.0.0.1:3478?transport=udp".to_owned(),
            "turns:127.0.0.1:5349?transport=tcp".to_owned(),
        ]
    } else {
        turn_uris.iter().take(4).cloned().collect()
    };
    let expiry = SystemTime::now()
        .checked_add(Duration::from_secs(ICE_TTL_SECONDS))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let password: String = uuid::Uuid::new_v4().simple().to_string();
    json!({
        "IceServerList": [{
            "Uris": uris,
            "Username": format!("{expiry}-kvs-emulator"),
            "Password": password,
            "Ttl": ICE_TTL_SECONDS,
        }]
    })
}
