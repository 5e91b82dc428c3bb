//! HLS playback of a stream's fragments, as `kinesis-video-archived-media` serves it:
//! `GetHLSStreamingSessionURL` (SigV4, on the control-plane listener like the other
//! archived-media operations) returns `<endpoint>/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=…`;
//! a player then fetches, without SigV4 (the token authorizes), under `/hls/v1/`:
//!
//! - `getHLSMasterPlaylist.m3u8`: `CODECS` (`avc1.PPCCLL` from the avcC, `mp4a.40.2` from the
//!   AudioSpecificConfig), `RESOLUTION`, `BANDWIDTH`; the video track's media playlist as the
//!   variant, the audio track's as an `EXT-X-MEDIA` audio rendition (none for a stream without
//!   audio);
//! - `getHLSMediaPlaylist.m3u8?…&TrackNumber=1|2`: `EXT-X-MAP` to the track's init fragment,
//!   then per fragment `#EXTINF`, `EXT-X-PROGRAM-DATE-TIME` (`DisplayFragmentTimestamp=ALWAYS`),
//!   `EXT-X-DISCONTINUITY` (`DiscontinuityMode`), `EXT-X-ENDLIST` when no fragment will be added
//!   ([`session`] says which fragments, for each `PlaybackMode`);
//! - `getMP4InitFragment.mp4?…&TrackNumber=N` and
//!   `getMP4MediaFragment.mp4?…&FragmentNumber=F&TrackNumber=N` ([`segments`]).
//!
//! The token ([`token`]) is signed, bound to the stream (its ARN) and to the request's
//! parameters, and expires after `Expires` seconds; a tampered, foreign or expired token is a
//! `NotAuthorizedException` (401). `ContainerFormat` `MPEG_TS` is refused
//! (`InvalidArgumentException`): the emulator packages fMP4 only.

pub(crate) mod playlist;
pub(crate) mod routes;
pub(crate) mod segments;
pub(crate) mod session;
pub(crate) mod token;

use serde_json::{json, Map, Value};

use crate::api_error::ApiError;
use crate::shared::Shared;
use crate::store::clip::ReadFragment;
use crate::store::StoredFragment;

/// The operation's path name (`POST /getHLSStreamingSessionURL`).
pub(crate) const OPERATION: &str = "getHLSStreamingSessionURL";

/// Where the playlists and fragments are served.
pub(crate) const PREFIX: &str = "/hls/v1/";

/// 400 NoDataRetentionException: the stream keeps no media.
fn no_data_retention(stream: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::BAD_REQUEST,
        "NoDataRetentionException",
        format!("The stream {stream} does not retain data (DataRetentionInHours is 0)."),
    )
}

/// 400 MissingCodecPrivateDataException.
pub(crate) fn missing_codec_private_data(fragment: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::BAD_REQUEST,
        "MissingCodecPrivateDataException",
        format!("Fragment {fragment} has no H.264 track with codec private data."),
    )
}

/// The store could not be read: an internal failure, logged.
pub(crate) fn read_failed(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "a stream's fragments could not be read for HLS");
    ApiError::new(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "InternalFailure",
        "The stream's fragments cannot be read.",
    )
}

/// Read a stored fragment's file back. An audio track without a frame is left out: the store
/// declares AAC in every fragment, and a device that sends no audio leaves it empty, so such a
/// stream plays as video only.
pub(crate) fn read(fragment: &StoredFragment) -> Result<ReadFragment, ApiError> {
    let file = std::fs::read(&fragment.file).map_err(read_failed)?;
    let mut read = crate::store::clip::read_fragment(&file).map_err(read_failed)?;
    let audio_id = u64::from(crate::store::fmp4::AUDIO_TRACK_ID);
    if !read.samples.iter().any(|s| s.track == audio_id) {
        read.audio = None;
    }
    Ok(read)
}

/// `GetHLSStreamingSessionURL` at `now_ms`: validate, check that the stream has what the
/// session would play, and sign the session's token into the master playlist's URL.
pub(crate) fn get_hls_streaming_session_url(
    shared: &Shared,
    body: &Map<String, Value>,
    now_ms: i64,
) -> Result<Value, ApiError> {
    let name = crate::archived_media::stream_name(shared, body)?;
    let (arn, retention) = {
        let registry = shared.registry();
        let stream = registry.stream(crate::registry::ResourceRef::Name(&name))?;
        (stream.arn.clone(), stream.data_retention_in_hours)
    };
    let claims = session::request_claims(body, &name, &arn, now_ms)?;
    if retention == 0 {
        return Err(no_data_retention(&name));
    }
    let no_fragments = || {
        ApiError::not_found(format!(
            "No fragments found in the stream {name} for the requested time range."
        ))
    };
    if !shared.stores.has_data(&name) {
        return Err(no_fragments());
    }
    let stored = shared.stores.fragments(&name).map_err(read_failed)?;
    let metas: Vec<_> = stored.iter().map(|f| f.meta.clone()).collect();
    let selection = session::select(&claims, &metas, now_ms);
    let Some(&newest) = selection.listed.last() else {
        return Err(no_fragments());
    };
    if claims.mode == token::PlaybackMode::Live {
        let end = metas[newest].server_timestamp_ms + metas[newest].fragment_length_ms;
        let recent = shared.config.timings.hls_live_recent_media;
        if end < now_ms - recent.as_millis() as i64 {
            return Err(ApiError::not_found(format!(
                "No fragments found in the stream {name} in the last {} seconds: LIVE needs media being ingested.",
                recent.as_secs()
            )));
        }
    }
    if read(&stored[newest])?.video.is_none() {
        return Err(missing_codec_private_data(&metas[newest].fragment_number));
    }
    let token = shared.hls_key.sign(&claims);
    tracing::debug!(stream = %name, mode = ?claims.mode, "HLS streaming session made");
    Ok(json!({
        "HLSStreamingSessionURL": format!(
            "{}{PREFIX}getHLSMasterPlaylist.m3u8?SessionToken={token}",
            shared.endpoints.control_plane
        )
    }))
}
