//! Playback of a stream's fragments over HLS and MPEG-DASH, as `kinesis-video-archived-media`
//! serves it. `GetHLSStreamingSessionURL` and `GetDASHStreamingSessionURL` (SigV4, on the
//! control-plane listener like the other archived-media operations) return
//! `<endpoint>/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=…` or
//! `<endpoint>/dash/v1/getDASHManifest.mpd?SessionToken=…`; a player then fetches, without
//! SigV4 (the token authorizes):
//!
//! - `/hls/v1/getHLSMasterPlaylist.m3u8`: `CODECS` (`avc1.PPCCLL` from the avcC, `mp4a.40.2`
//!   from the AudioSpecificConfig), `RESOLUTION`, `BANDWIDTH`; the video track's media playlist
//!   as the variant, the audio track's as an `EXT-X-MEDIA` audio rendition (none for a stream
//!   without audio) ([`hls`]);
//! - `/hls/v1/getHLSMediaPlaylist.m3u8?…&TrackNumber=1|2`: `EXT-X-MAP` to the track's init
//!   fragment, then per fragment `#EXTINF`, `EXT-X-PROGRAM-DATE-TIME`
//!   (`DisplayFragmentTimestamp=ALWAYS`), `EXT-X-DISCONTINUITY` (`DiscontinuityMode`),
//!   `EXT-X-ENDLIST` when no fragment will be added ([`session`] says which fragments, for each
//!   `PlaybackMode`);
//! - `/dash/v1/getDASHManifest.mpd`: the same fragments as a `SegmentTimeline` per track
//!   ([`dash`]);
//! - under either prefix, `getMP4InitFragment.mp4?…&TrackNumber=N` and
//!   `getMP4MediaFragment.mp4?…&TrackNumber=N` with `FragmentNumber=F` (HLS) or
//!   `SequenceNumber=$Number$` (DASH) ([`segments`]).
//!
//! The token ([`token`]) is signed, bound to the protocol, the stream (its ARN) and the
//! request's parameters, and expires after `Expires` seconds; a tampered, foreign or expired
//! token is a `NotAuthorizedException` (401). `ContainerFormat` `MPEG_TS` is refused
//! (`InvalidArgumentException`): the emulator packages fMP4 only.

pub(crate) mod dash;
pub(crate) mod hls;
pub(crate) mod routes;
pub(crate) mod segments;
pub(crate) mod session;
pub(crate) mod token;

use serde_json::{json, Map, Value};

use crate::api_error::ApiError;
use crate::shared::Shared;
use crate::store::clip::ReadFragment;
use crate::store::StoredFragment;

/// `GetHLSStreamingSessionURL`'s path name (`POST /getHLSStreamingSessionURL`).
pub(crate) const HLS_OPERATION: &str = "getHLSStreamingSessionURL";
/// `GetDASHStreamingSessionURL`'s path name.
pub(crate) const DASH_OPERATION: &str = "getDASHStreamingSessionURL";

/// Where HLS playlists and fragments are served.
pub(crate) const HLS_PREFIX: &str = "/hls/v1/";
/// Where DASH manifests and fragments are served.
pub(crate) const DASH_PREFIX: &str = "/dash/v1/";

/// 400 NoDataRetentionException: the stream keeps no media.
pub(crate) fn no_data_retention(stream: &str) -> ApiError {
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
    tracing::error!(error = %e, "a stream's fragments could not be read for playback");
    ApiError::new(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "InternalFailure",
        "The stream's fragments cannot be read.",
    )
}

/// Read a stored fragment's file back.
pub(crate) fn read(fragment: &StoredFragment) -> Result<ReadFragment, ApiError> {
    let file = std::fs::read(&fragment.file).map_err(read_failed)?;
    crate::store::clip::read_fragment(&file).map_err(read_failed)
}

/// Whether a fragment read back has an audio frame. The store declares AAC in every fragment;
/// a device that sends no audio leaves the track empty, and a session's last fragment can be
/// cut before its audio arrived.
pub(crate) fn has_audio_frames(read: &ReadFragment) -> bool {
    let audio = u64::from(crate::store::fmp4::AUDIO_TRACK_ID);
    read.audio.is_some() && read.samples.iter().any(|s| s.track == audio)
}

/// `GetHLSStreamingSessionURL` at `now_ms`: the master playlist's URL.
pub(crate) fn get_hls_streaming_session_url(
    shared: &Shared,
    body: &Map<String, Value>,
    now_ms: i64,
) -> Result<Value, ApiError> {
    let url = streaming_session_url(shared, token::Protocol::Hls, body, now_ms)?;
    Ok(json!({ "HLSStreamingSessionURL": url }))
}

/// `GetDASHStreamingSessionURL` at `now_ms`: the manifest's URL.
pub(crate) fn get_dash_streaming_session_url(
    shared: &Shared,
    body: &Map<String, Value>,
    now_ms: i64,
) -> Result<Value, ApiError> {
    let url = streaming_session_url(shared, token::Protocol::Dash, body, now_ms)?;
    Ok(json!({ "DASHStreamingSessionURL": url }))
}

/// The URL a `protocol` session for `body` starts from (the master playlist or the manifest),
/// made at `now_ms`: what the two operations answer.
pub(crate) fn streaming_session_url(
    shared: &Shared,
    protocol: token::Protocol,
    body: &Map<String, Value>,
    now_ms: i64,
) -> Result<String, ApiError> {
    let token = session_token(shared, protocol, body, now_ms)?;
    let start = match protocol {
        token::Protocol::Hls => format!("{HLS_PREFIX}getHLSMasterPlaylist.m3u8"),
        token::Protocol::Dash => format!("{DASH_PREFIX}getDASHManifest.mpd"),
    };
    Ok(format!(
        "{}{start}?SessionToken={token}",
        shared.endpoints.control_plane
    ))
}

/// Validate a session request, check that the stream has what the session would play, and
/// sign the session's token.
fn session_token(
    shared: &Shared,
    protocol: token::Protocol,
    body: &Map<String, Value>,
    now_ms: i64,
) -> Result<String, ApiError> {
    let name = crate::archived_media::stream_name(shared, body)?;
    let (arn, retention) = {
        let registry = shared.registry();
        let stream = registry.stream(crate::registry::ResourceRef::Name(&name))?;
        (stream.arn.clone(), stream.data_retention_in_hours)
    };
    let min_expires_s = shared
        .config
        .timings
        .min_playback_session_expires
        .as_secs()
        .clamp(1, session::MIN_EXPIRES_S);
    let claims = session::request_claims(protocol, body, &name, &arn, now_ms, min_expires_s)?;
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
        let recent = shared.config.timings.live_playback_recent_media;
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
    tracing::debug!(stream = %name, ?protocol, mode = ?claims.mode, "streaming session made");
    Ok(shared.playback_key.sign(&claims))
}
