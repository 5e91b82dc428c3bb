//! The signaling REST API on the channel HTTPS endpoint: `POST /v1/get-ice-server-config`.

use std::sync::Arc;
use std::time::SystemTime;

use http::Method;
use hyper::body::Incoming;
use hyper::Request;
use serde_json::json;

use crate::api_error::{Api, ApiError};
use crate::http_server::HttpResponse;
use crate::http_util::ReadRequest;
use crate::json_api::{self, JsonApi, Reply};
use crate::registry::ResourceRef;
use crate::shared::Shared;
use crate::validate;

/// The signaling REST API as the channel HTTPS listener serves it.
const API: JsonApi = JsonApi {
    api: Api::SignalingRest,
    log_refusals: false,
    route,
};

/// Serve one request on the channel HTTPS listener.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
    API.serve(shared, req).await
}

fn route(shared: &Arc<Shared>, req: &ReadRequest) -> Result<Reply, ApiError> {
    if req.path != "/v1/get-ice-server-config" || req.method != Method::POST {
        return Ok(Reply::WrongEndpoint);
    }
    let body = json_api::admit(
        shared,
        req,
        Api::SignalingRest,
        "getIceServerConfig",
        json_api::channel_field("ChannelARN"),
    )?;
    let arn = validate::required(&body, "ChannelARN")?;
    validate::arn("ChannelARN", arn)?;
    let client_id = validate::optional(&body, "ClientId")?;
    if let Some(client_id) = client_id {
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
    let channel_name = shared
        .registry()
        .channel(ResourceRef::Arn(arn))?
        .name
        .clone();
    // The TURN user names who asked, like AWS's opaque user part; it shows in the inspection
    // API's TURN allocations.
    let user = format!("{channel_name}.{}", client_id.unwrap_or("master"));
    let entry = shared.turn.ice_server(
        &user,
        SystemTime::now(),
        // AWS's is fixed at 300 s (§6.1); clients refresh a grace period before it.
        shared.config.timings.ice_server_ttl,
    );
    // Never empty, TTL above the clients' 30 s grace (protocol notes §6.1, §8.4).
    Ok(Reply::Json(json!({ "IceServerList": [entry] })))
}
