//! The storage API on the WEBRTC endpoint: `POST /joinStorageSession` and
//! `POST /joinStorageSessionAsViewer` (restJson1, errors with a lower-case `message`).

use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::Request;

use super::peer;
use crate::api_error::{Api, ApiError};
use crate::http_server::HttpResponse;
use crate::http_util::ReadRequest;
use crate::json_api::{self, JsonApi, Reply};
use crate::link::Role;
use crate::registry::ResourceRef;
use crate::shared::Shared;
use crate::validate;

/// The storage API as the WEBRTC listener serves it.
const API: JsonApi = JsonApi {
    api: Api::Storage,
    log_refusals: true,
    route: join,
};

/// Serve one request on the WEBRTC listener.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
    API.serve(shared, req).await
}

fn join(shared: &Arc<Shared>, req: &ReadRequest) -> Result<Reply, ApiError> {
    let (operation, as_viewer) = match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/joinStorageSession") => ("joinStorageSession", false),
        ("POST", "/joinStorageSessionAsViewer") => ("joinStorageSessionAsViewer", true),
        _ => {
            return Err(ApiError::new(
                http::StatusCode::NOT_FOUND,
                "UnknownOperationException",
                format!("The storage API has no {} {}.", req.method, req.path),
            ))
        }
    };
    // Auth, then throttling, then input (protocol notes §8.6).
    let body = json_api::admit(
        shared,
        req,
        Api::Storage,
        operation,
        json_api::channel_field("channelArn"),
    )?;
    let channel_arn = validate::required(&body, "channelArn")?;
    validate::arn("channelArn", channel_arn)?;
    if shared.faults.take_client_limit(channel_arn) {
        return Err(ApiError::client_limit(
            "Your request has been throttled (fault injected by the emulator).",
        ));
    }
    let client_id = validate::optional(&body, "clientId")?;
    let role = match (as_viewer, client_id) {
        (true, None) => {
            return Err(validate::required(&body, "clientId")
                .map(|_| ())
                .unwrap_err())
        }
        (false, Some(_)) if !shared.config.accept_viewer_on_join_storage_session => {
            return Err(ApiError::invalid_argument(
                "clientId is not a member of JoinStorageSession; use JoinStorageSessionAsViewer.",
            ))
        }
        (_, Some(id)) => {
            validate::name("clientId", id, 256)?;
            Role::Viewer(id.to_owned())
        }
        (false, None) => Role::Master,
    };
    let stream_arn = {
        let registry = shared.registry();
        let channel = registry.channel(ResourceRef::Arn(channel_arn))?;
        channel.storage_stream().map(str::to_owned).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "The channel {} is not mapped to a stream; enable media storage with UpdateMediaStorageConfiguration.",
                channel.name
            ))
        })?
    };
    if let Role::Viewer(id) = &role {
        let in_use = shared
            .sessions
            .viewer_slots_in_use(channel_arn, id, Instant::now());
        if in_use >= shared.config.limits.viewers_per_storage_session {
            return Err(ApiError::client_limit(format!(
                "The maximum number of viewers connected to the session ({}) has been reached.",
                shared.config.limits.viewers_per_storage_session
            )));
        }
    }
    let (handle, inbound) = shared
        .sessions
        .begin(channel_arn, &stream_arn, role.clone());
    tracing::info!(session = handle.id, channel = %channel_arn, ?role, "storage session joined");
    // A registered external storage peer (a browser, another stack) plays the session; else
    // the built-in one does.
    let join = crate::external_peers::Join {
        handle,
        role,
        inbound,
    };
    if let Err(join) = shared.external_peers.take(channel_arn, join) {
        let faults = shared.faults.take_offer_faults(channel_arn);
        shared.peers.spawn(peer::run(
            shared.clone(),
            join.handle,
            join.role,
            join.inbound,
            faults,
        ));
    }
    Ok(Reply::Empty)
}
