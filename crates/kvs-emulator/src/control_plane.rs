//! The `kinesisvideo` control plane (restJson1): `POST /<operationName>` with a JSON body.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use http::Method;
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Map, Value};

use crate::api_error::{Api, ApiError};
use crate::http_server::HttpResponse;
use crate::http_util::ReadRequest;
use crate::json_api::{self, JsonApi, Reply};
use crate::registry::ResourceRef;
use crate::shared::Shared;
use crate::validate;

/// The control plane as its listener serves it.
const API: JsonApi = JsonApi {
    api: Api::ControlPlane,
    log_refusals: false,
    route,
};

/// Serve one request on the control-plane listener: the emulator's own paths (external storage
/// peers, inspection), then the `kinesisvideo` API.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
    if req.uri().path() == crate::storage::external::PATH {
        return crate::storage::external::handle(shared, req).await;
    }
    if req.uri().path().starts_with(crate::inspect::PREFIX) {
        return crate::inspect::handle(shared, req).await;
    }
    if req.uri().path().starts_with(crate::playback::HLS_PREFIX)
        || req.uri().path().starts_with(crate::playback::DASH_PREFIX)
    {
        // Playlists and fragments: the session token authorizes, not SigV4.
        return crate::playback::routes::handle(shared, req).await;
    }
    API.serve(shared, req).await
}

fn route(shared: &Arc<Shared>, req: &ReadRequest) -> Result<Reply, ApiError> {
    if req.path == "/v1/get-ice-server-config" {
        // AWS answers this on the control-plane host with an XML AccessDenied (§8.2).
        return Ok(Reply::WrongEndpoint);
    }
    if req.method != Method::POST {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        ));
    }
    let requested = req.path.trim_start_matches('/');
    if requested == crate::get_media::OPERATION {
        let body = json_api::admit(
            shared,
            req,
            Api::ControlPlane,
            crate::get_media::OPERATION,
            |body| crate::archived_media::stream_name(shared, body).ok(),
        )?;
        return crate::get_media::get_media(shared, &body);
    }
    if let Some(op) = crate::archived_media::OPERATIONS
        .iter()
        .copied()
        .find(|op| *op == requested)
    {
        // Rates per stream (only the playback session operations have one by default).
        let body = json_api::admit(shared, req, Api::ControlPlane, op, |body| {
            crate::archived_media::stream_name(shared, body).ok()
        })?;
        return crate::archived_media::route(shared, op, &body);
    }
    let Some(op) = OPERATIONS.iter().copied().find(|op| *op == requested) else {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("The emulator does not implement /{requested}."),
        ));
    };
    let body = json_api::admit(shared, req, Api::ControlPlane, op, |body| {
        throttled_channel(shared, body)
    })?;
    let value = match op {
        "createSignalingChannel" => create_signaling_channel(shared, &body),
        "describeSignalingChannel" => describe_signaling_channel(shared, &body),
        "deleteSignalingChannel" => delete_signaling_channel(shared, &body),
        "createStream" => create_stream(shared, &body),
        "describeStream" => describe_stream(shared, &body),
        "listStreams" => list_streams(shared, &body),
        "deleteStream" => delete_stream(shared, &body),
        "updateMediaStorageConfiguration" => update_media_storage_configuration(shared, &body),
        "describeMediaStorageConfiguration" => describe_media_storage_configuration(shared, &body),
        "getSignalingChannelEndpoint" => get_signaling_channel_endpoint(shared, &body),
        "getDataEndpoint" => crate::archived_media::get_data_endpoint(shared, &body),
        _ => unreachable!("checked against OPERATIONS"),
    }?;
    Ok(Reply::Json(value))
}

const OPERATIONS: &[&str] = &[
    "createSignalingChannel",
    "describeSignalingChannel",
    "deleteSignalingChannel",
    "createStream",
    "describeStream",
    "listStreams",
    "deleteStream",
    "updateMediaStorageConfiguration",
    "describeMediaStorageConfiguration",
    "getSignalingChannelEndpoint",
    "getDataEndpoint",
];

/// The channel a request is about, for per-channel rates: its ARN when it exists, else what the
/// request named it.
fn throttled_channel(shared: &Shared, body: &Map<String, Value>) -> Option<String> {
    let named = |field: &str| body.get(field).and_then(Value::as_str);
    let (by, raw) = match (named("ChannelARN"), named("ChannelName")) {
        (Some(arn), _) => (ResourceRef::Arn(arn), arn),
        (None, Some(name)) => (ResourceRef::Name(name), name),
        (None, None) => return None,
    };
    let arn = shared.registry().channel(by).map(|c| c.arn.clone());
    Some(arn.unwrap_or_else(|_| raw.to_owned()))
}

/// `<kind>ARN` or `<kind>Name` (kind `Channel` or `Stream`), at least one; the ARN wins.
fn resource_ref<'a>(body: &'a Map<String, Value>, kind: &str) -> Result<ResourceRef<'a>, ApiError> {
    let (arn_field, name_field) = (format!("{kind}ARN"), format!("{kind}Name"));
    if let Some(arn) = validate::optional(body, &arn_field)? {
        validate::arn(&arn_field, arn)?;
        return Ok(ResourceRef::Arn(arn));
    }
    if let Some(name) = validate::optional(body, &name_field)? {
        validate::name(&name_field, name, 256)?;
        return Ok(ResourceRef::Name(name));
    }
    Err(ApiError::invalid_argument(format!(
        "Either {name_field} or {arn_field} must be specified."
    )))
}

fn create_signaling_channel(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = validate::required(body, "ChannelName")?;
    validate::name("ChannelName", name, 256)?;
    let channel_type = validate::optional(body, "ChannelType")?.unwrap_or("SINGLE_MASTER");
    if !matches!(channel_type, "SINGLE_MASTER" | "FULL_MESH") {
        return Err(ApiError::invalid_argument(format!(
            "Value '{channel_type}' at 'channelType' failed to satisfy constraint: Member must satisfy enum value set: [SINGLE_MASTER, FULL_MESH]"
        )));
    }
    // A member of the wrong JSON type is a SerializationException at AWS, before validation.
    let single_master = body.get("SingleMasterConfiguration");
    if single_master.is_some_and(|c| !c.is_object() && !c.is_null()) {
        return Err(ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "SerializationException",
            "SingleMasterConfiguration must be an object.",
        ));
    }
    let ttl = match single_master.and_then(|c| c.get("MessageTtlSeconds")) {
        None | Some(Value::Null) => 60,
        Some(v) => match v.as_u64() {
            Some(t) if (5..=120).contains(&t) => t as u32,
            _ => {
                return Err(ApiError::invalid_argument(
                    "Value at 'singleMasterConfiguration.messageTtlSeconds' failed to satisfy constraint: Member must have value between 5 and 120",
                ))
            }
        },
    };
    let cfg = &shared.config;
    let channel = shared.registry().create_channel(
        &cfg.region,
        &cfg.account_id,
        name,
        channel_type,
        ttl,
        SystemTime::now(),
    )?;
    tracing::info!(channel = %channel.name, "created signaling channel");
    Ok(json!({ "ChannelARN": channel.arn }))
}

fn describe_signaling_channel(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let by = resource_ref(body, "Channel")?;
    let registry = shared.registry();
    let c = registry.channel(by)?;
    Ok(json!({
        "ChannelInfo": {
            "ChannelName": c.name,
            "ChannelARN": c.arn,
            "ChannelType": c.channel_type,
            "ChannelStatus": "ACTIVE",
            "CreationTime": c.creation_time,
            "SingleMasterConfiguration": { "MessageTtlSeconds": c.message_ttl_seconds },
            "Version": c.version,
        }
    }))
}

fn delete_signaling_channel(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = validate::required(body, "ChannelARN")?;
    validate::arn("ChannelARN", arn)?;
    let current_version = validate::optional(body, "CurrentVersion")?;
    let channel = shared.registry().delete_channel(arn, current_version)?;
    shared.sessions.end_channel(&channel.arn, "channel deleted");
    shared.faults.clear(&channel.arn);
    shared.relays.remove(&channel.arn);
    shared.hub.close_channel(&channel.arn, "channel deleted");
    tracing::info!(channel = %channel.name, "deleted signaling channel");
    Ok(json!({}))
}

/// `DeleteStream`: the stream leaves the registry; open GetMedia responses on it end after the
/// fragment they are sending. Its fragments stay on disk (found again by a stream created with
/// the same name, as after a restart).
fn delete_stream(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = validate::required(body, "StreamARN")?;
    validate::arn("StreamARN", arn)?;
    let current_version = validate::optional(body, "CurrentVersion")?;
    let stream = shared.registry().delete_stream(arn, current_version)?;
    shared.stores.wake_readers(&stream.name);
    tracing::info!(stream = %stream.name, "deleted stream");
    Ok(json!({}))
}

fn create_stream(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = validate::required(body, "StreamName")?;
    validate::name("StreamName", name, 256)?;
    let retention = match body.get("DataRetentionInHours") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().filter(|h| *h <= 87_600).ok_or_else(|| {
            ApiError::invalid_argument("DataRetentionInHours must be between 0 and 87600.")
        })? as u32,
    };
    let device = validate::optional(body, "DeviceName")?.map(str::to_owned);
    let media_type = validate::optional(body, "MediaType")?.map(str::to_owned);
    let kms = validate::optional(body, "KmsKeyId")?.map(str::to_owned);
    let cfg = &shared.config;
    let stream = shared.registry().create_stream(
        &cfg.region,
        &cfg.account_id,
        name,
        device,
        media_type,
        kms,
        retention,
        SystemTime::now(),
    )?;
    tracing::info!(stream = %stream.name, "created stream");
    Ok(json!({ "StreamARN": stream.arn }))
}

fn describe_stream(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let by = resource_ref(body, "Stream")?;
    let registry = shared.registry();
    Ok(json!({ "StreamInfo": stream_info(registry.stream(by)?) }))
}

/// A stream as `DescribeStream` and `ListStreams` show it.
fn stream_info(s: &crate::registry::Stream) -> Value {
    let mut info = json!({
        "StreamName": s.name,
        "StreamARN": s.arn,
        "KmsKeyId": s.kms_key_id,
        "Version": s.version,
        "Status": "ACTIVE",
        "CreationTime": s.creation_time,
        "DataRetentionInHours": s.data_retention_in_hours,
    });
    if let Some(device) = &s.device_name {
        info["DeviceName"] = json!(device);
    }
    if let Some(media_type) = &s.media_type {
        info["MediaType"] = json!(media_type);
    }
    info
}

/// `ListStreams`: every stream by name, `MaxResults` (1–10000) a page, the page after
/// `NextToken`, only names beginning with `StreamNameCondition.ComparisonValue` when given.
fn list_streams(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    const TOKEN_PREFIX: &str = "kvs-emulator-streams-after:";
    let max_results = match body.get("MaxResults") {
        None => 10_000,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=10_000).contains(&n) => n as usize,
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "1 validation error detected: Value '{v}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 10000"
                )))
            }
        },
    };
    let prefix = match body.get("StreamNameCondition") {
        None => None,
        Some(Value::Object(condition)) => {
            let operator = validate::optional(condition, "ComparisonOperator")?;
            if operator.is_some_and(|o| o != "BEGINS_WITH") {
                return Err(ApiError::invalid_argument(format!(
                    "1 validation error detected: Value '{}' at 'streamNameCondition.comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [BEGINS_WITH]",
                    validate::shown(operator.unwrap_or_default())
                )));
            }
            let value = validate::optional(condition, "ComparisonValue")?;
            if let Some(value) = value {
                validate::name("StreamNameCondition.ComparisonValue", value, 256)?;
            }
            value.map(str::to_owned)
        }
        Some(_) => return Err(ApiError::invalid_argument(
            "StreamNameCondition must be an object with ComparisonOperator and ComparisonValue.",
        )),
    };
    let after = match validate::optional(body, "NextToken")? {
        None => None,
        Some(token) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|text| text.strip_prefix(TOKEN_PREFIX).map(str::to_owned))
                .ok_or_else(|| {
                    ApiError::invalid_argument("NextToken is not a token ListStreams returned.")
                })?,
        ),
    };
    let streams = shared.registry().streams();
    let mut matching = streams
        .iter()
        .filter(|s| prefix.as_deref().is_none_or(|p| s.name.starts_with(p)))
        .filter(|s| after.as_deref().is_none_or(|a| s.name.as_str() > a));
    let page: Vec<&crate::registry::Stream> = matching.by_ref().take(max_results).collect();
    let mut answer =
        json!({ "StreamInfoList": page.iter().map(|s| stream_info(s)).collect::<Vec<_>>() });
    if let (Some(last), Some(_)) = (page.last(), matching.next()) {
        answer["NextToken"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{TOKEN_PREFIX}{}", last.name)));
    }
    Ok(answer)
}

fn update_media_storage_configuration(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let channel_arn = validate::required(body, "ChannelARN")?;
    validate::arn("ChannelARN", channel_arn)?;
    let config = match body.get("MediaStorageConfiguration") {
        Some(Value::Object(c)) => c,
        _ => {
            return Err(ApiError::invalid_argument(
                "1 validation error detected: Value null at 'mediaStorageConfiguration' failed to satisfy constraint: Member must not be null",
            ))
        }
    };
    let status = validate::required(config, "Status")?;
    let stream_arn = validate::optional(config, "StreamARN")?;
    if let Some(arn) = stream_arn {
        validate::arn("StreamARN", arn)?;
    }
    let enabled = match (status, stream_arn) {
        ("ENABLED", Some(_)) => true,
        ("ENABLED", None) => {
            return Err(ApiError::invalid_argument("StreamARN is required when Status is ENABLED."))
        }
        ("DISABLED", _) => false,
        (other, _) => {
            return Err(ApiError::invalid_argument(format!(
                "Value '{other}' at 'mediaStorageConfiguration.status' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"
            )))
        }
    };
    shared.registry().update_media_storage(
        channel_arn,
        stream_arn,
        enabled,
        shared.config.limits.storage_enabled_channels,
    )?;
    if !enabled {
        shared
            .sessions
            .end_channel(channel_arn, "media storage disabled");
    }
    tracing::info!(channel = %channel_arn, status, "updated media storage configuration");
    Ok(json!({}))
}

fn describe_media_storage_configuration(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let by = resource_ref(body, "Channel")?;
    let registry = shared.registry();
    let c = registry.channel(by)?;
    Ok(json!({
        "MediaStorageConfiguration": {
            "StreamARN": c.storage_stream_arn,
            "Status": if c.storage_enabled() { "ENABLED" } else { "DISABLED" },
        }
    }))
}

fn get_signaling_channel_endpoint(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let arn = validate::required(body, "ChannelARN")?;
    validate::arn("ChannelARN", arn)?;
    let config = body.get("SingleMasterChannelEndpointConfiguration");
    let protocols: Vec<String> = match config.and_then(|c| c.get("Protocols")) {
        None | Some(Value::Null) => vec!["WSS".into(), "HTTPS".into()],
        Some(Value::Array(list)) => {
            let names: Option<Vec<String>> =
                list.iter().map(|p| p.as_str().map(str::to_owned)).collect();
            names
                .ok_or_else(|| ApiError::invalid_argument("Protocols must be a list of strings."))?
        }
        Some(_) => {
            return Err(ApiError::invalid_argument(
                "Protocols must be a list of strings.",
            ))
        }
    };
    if protocols.is_empty() || protocols.len() > 5 {
        return Err(ApiError::invalid_argument(
            "Value at 'singleMasterChannelEndpointConfiguration.protocols' failed to satisfy constraint: Member must have length between 1 and 5",
        ));
    }
    let role = match config.and_then(|c| c.get("Role")) {
        None | Some(Value::Null) => "MASTER",
        Some(Value::String(r)) if r == "MASTER" || r == "VIEWER" => r.as_str(),
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "Value {other} at 'singleMasterChannelEndpointConfiguration.role' failed to satisfy constraint: Member must satisfy enum value set: [MASTER, VIEWER]"
            )))
        }
    };
    let registry = shared.registry();
    let channel = registry.channel(ResourceRef::Arn(arn))?;
    let mut list = Vec::new();
    for protocol in &protocols {
        let endpoint = match protocol.as_str() {
            "WSS" => &shared.endpoints.wss,
            "HTTPS" => &shared.endpoints.https,
            "WEBRTC" if channel.storage_enabled() => &shared.endpoints.webrtc,
            "WEBRTC" => {
                return Err(ApiError::invalid_argument(format!(
                    "The WEBRTC protocol needs media storage; enable it on {} with UpdateMediaStorageConfiguration.",
                    channel.name
                )))
            }
            other => {
                return Err(ApiError::invalid_argument(format!(
                    "Value '{other}' at 'singleMasterChannelEndpointConfiguration.protocols' failed to satisfy constraint: Member must satisfy enum value set: [WSS, HTTPS, WEBRTC]"
                )))
            }
        };
        list.push(json!({ "Protocol": protocol, "ResourceEndpoint": endpoint }));
    }
    tracing::debug!(channel = %channel.name, role, "endpoints served");
    Ok(json!({ "ResourceEndpointList": list }))
}
