//! The `/hls/v1/` and `/dash/v1/` paths a player fetches with a session's token: the playlists,
//! the manifest and the fMP4 pieces, without SigV4. Each request checks the token
//! ([`super::token`]: this emulator's, unexpired, of this protocol), that its stream still
//! exists as the stream it was made for, and reads the stream's fragments as they are now, so a
//! LIVE playlist or manifest lists fragments as soon as the store has them.

use std::sync::Arc;
use std::time::SystemTime;

use http::Method;
use hyper::body::Incoming;
use hyper::Request;

use super::dash;
use super::hls::{self, Entry, MasterInfo, MediaPlaylist, AUDIO_TRACK, VIDEO_TRACK};
use super::segments::{self, SegmentError, Track};
use super::session::{self, Selection};
use super::token::{Claims, PlaybackMode, Protocol, TokenError, TokenKey};
use crate::api_error::{Api, ApiError};
use crate::http_server::HttpResponse;
use crate::http_util;
use crate::shared::Shared;
use crate::store::clip::ReadFragment;
use crate::store::StoredFragment;
use crate::throttle::FragmentPoints;

/// The `Content-Type` of playlists, as the service sends it.
const PLAYLIST_TYPE: &str = "application/x-mpegURL";
/// The `Content-Type` of DASH manifests.
const MANIFEST_TYPE: &str = "application/dash+xml";
/// The `Content-Type` of fMP4 pieces.
const MP4_TYPE: &str = "video/mp4";

/// Serve one request under [`super::HLS_PREFIX`] or [`super::DASH_PREFIX`].
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> HttpResponse {
    let headers = req.headers().clone();
    if req.method() == Method::OPTIONS {
        return http_util::preflight(&headers);
    }
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let path = req.uri().path().to_owned();
    let query = crate::sigv4::decode_query(req.uri().query().unwrap_or(""));
    let answer = if req.method() == Method::GET || req.method() == Method::HEAD {
        let (protocol, name) = match path.strip_prefix(super::HLS_PREFIX) {
            Some(name) => (Protocol::Hls, name),
            None => (
                Protocol::Dash,
                path.strip_prefix(super::DASH_PREFIX).unwrap_or_default(),
            ),
        };
        // Reading fragment files is blocking file I/O.
        let shared = shared.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || serve(&shared, protocol, &name, &query, now_ms))
            .await
            .unwrap_or_else(|e| Err(super::read_failed(e)))
    } else {
        Err(ApiError::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "InvalidArgumentException",
            "Playlists, manifests and fragments are fetched with GET.",
        ))
    };
    match answer {
        Ok((content_type, body)) => http_util::media(content_type, body, &headers),
        Err(err) => {
            tracing::debug!(%path, code = err.code, message = %err.message, "playback request refused");
            http_util::error(Api::ControlPlane, &err, Some(&headers))
        }
    }
}

/// 401 NotAuthorizedException, as the service answers a token it does not accept.
fn not_authorized(message: impl Into<String>) -> ApiError {
    ApiError::new(
        http::StatusCode::UNAUTHORIZED,
        "NotAuthorizedException",
        message,
    )
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The track a request asks for (`TrackNumber`: 1 or 2; absent: both).
fn track(query: &[(String, String)]) -> Result<Track, ApiError> {
    match param(query, "TrackNumber") {
        None => Ok(None),
        Some("1") => Ok(Some(VIDEO_TRACK)),
        Some("2") => Ok(Some(AUDIO_TRACK)),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "TrackNumber must be 1 or 2, not {}.",
            crate::validate::shown(other)
        ))),
    }
}

/// The claims of the request's `SessionToken` if `key` signed it and it has not expired at
/// `now_ms`, else the service's refusal.
fn verified(key: &TokenKey, query: &[(String, String)], now_ms: i64) -> Result<Claims, ApiError> {
    let token = param(query, "SessionToken")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid_argument("SessionToken is required."))?;
    key.verify(token, now_ms).map_err(|e| match e {
        TokenError::Expired => not_authorized(
            "The session token has expired: get a new URL with GetHLSStreamingSessionURL.",
        ),
        TokenError::Malformed | TokenError::BadSignature => {
            not_authorized("The session token is not valid.")
        }
    })
}

/// The session a request's token stands for, checked at `now_ms`, on the stream it was made
/// for.
fn session(shared: &Shared, query: &[(String, String)], now_ms: i64) -> Result<Claims, ApiError> {
    let claims = verified(&shared.playback_key, query, now_ms)?;
    let registry = shared.registry();
    let stream = registry
        .stream(crate::registry::ResourceRef::Name(&claims.stream))
        .map_err(|_| {
            ApiError::not_found(format!(
                "The stream {} of this session no longer exists.",
                claims.stream
            ))
        })?;
    if stream.arn != claims.arn {
        return Err(not_authorized(
            "The session token was issued for another stream.",
        ));
    }
    Ok(claims)
}

/// What one request under a playback prefix answers: a content type and body.
fn serve(
    shared: &Shared,
    protocol: Protocol,
    name: &str,
    query: &[(String, String)],
    now_ms: i64,
) -> Result<(&'static str, Vec<u8>), ApiError> {
    let known: &[&str] = match protocol {
        Protocol::Hls => &[
            "getHLSMasterPlaylist.m3u8",
            "getHLSMediaPlaylist.m3u8",
            "getMP4InitFragment.mp4",
            "getMP4MediaFragment.mp4",
            "getTSFragment.ts",
        ],
        Protocol::Dash => &[
            "getDASHManifest.mpd",
            "getMP4InitFragment.mp4",
            "getMP4MediaFragment.mp4",
        ],
    };
    if !known.contains(&name) {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!(
                "The emulator does not serve {}.",
                crate::validate::shown(name)
            ),
        ));
    }
    let claims = session(shared, query, now_ms)?;
    if claims.protocol != protocol {
        return Err(not_authorized(format!(
            "The session token is for a {:?} session.",
            claims.protocol
        )));
    }
    let token = param(query, "SessionToken").unwrap_or_default();
    admit(shared, &claims, name, token)?;
    if name == "getTSFragment.ts" {
        return Err(ApiError::invalid_argument(
            "MPEG_TS fragments are not supported by the emulator; sessions are FRAGMENTED_MP4.",
        ));
    }
    let stored = shared
        .stores
        .fragments(&claims.stream)
        .map_err(super::read_failed)?;
    let metas: Vec<_> = stored.iter().map(|f| f.meta.clone()).collect();
    let selection = session::select(&claims, &metas, now_ms);
    match name {
        "getHLSMasterPlaylist.m3u8" => {
            let (_, read) = codec_fragment(&claims, &stored, &selection)?;
            let info = describe(&read, &stored, &selection)?;
            Ok((PLAYLIST_TYPE, hls::master(&info, token).into_bytes()))
        }
        "getHLSMediaPlaylist.m3u8" => {
            let track = track(query)?.unwrap_or(VIDEO_TRACK);
            if track == AUDIO_TRACK {
                let (_, read) = codec_fragment(&claims, &stored, &selection)?;
                if read.audio.is_none() {
                    return Err(ApiError::not_found("The stream has no audio track (2)."));
                }
            }
            let listed = media_playlist(&claims, &stored, &selection, track);
            Ok((PLAYLIST_TYPE, hls::media(&listed, token).into_bytes()))
        }
        "getDASHManifest.mpd" => {
            let (_, read) = codec_fragment(&claims, &stored, &selection)?;
            let info = describe(&read, &stored, &selection)?;
            let manifest = manifest(&claims, &stored, &selection, &read, info, now_ms);
            Ok((MANIFEST_TYPE, dash::mpd(&manifest, token).into_bytes()))
        }
        "getMP4InitFragment.mp4" => {
            let (number, read) = codec_fragment(&claims, &stored, &selection)?;
            segments::init(&read, track(query)?)
                .map(|b| (MP4_TYPE, b))
                .map_err(|e| segment_error(e, &number))
        }
        _ => {
            let fragment = asked_fragment(&claims, &stored, query)?;
            let read = super::read(fragment)?;
            let sequence = session::media_sequence(&fragment.meta) as u32;
            segments::media(
                &read,
                &fragment.meta,
                track(query)?,
                sequence.wrapping_add(1),
            )
            .map(|b| (MP4_TYPE, b))
            .map_err(|e| segment_error(e, &fragment.meta.fragment_number))
        }
    }
}

/// Admit a request for `name` at its operation's session-level rate, keyed by the session's
/// `token`, then take its points from the stream's fragment quotas ([`crate::throttle`]).
fn admit(shared: &Shared, claims: &Claims, name: &str, token: &str) -> Result<(), ApiError> {
    let operation = name
        .split_once('.')
        .map_or(name, |(operation, _)| operation);
    shared
        .throttle
        .admit(operation, Some(token), std::time::Instant::now())?;
    let points = match operation {
        "getHLSMediaPlaylist" | "getDASHManifest" => FragmentPoints {
            metadata: claims.max_results,
            media: 0,
        },
        "getMP4MediaFragment" | "getTSFragment" => FragmentPoints {
            metadata: 0,
            media: 1,
        },
        _ => return Ok(()),
    };
    crate::archived_media::charge(shared, &claims.stream, points)
}

/// The fragment a media fragment request names, by `FragmentNumber` (HLS) or `SequenceNumber`
/// (DASH's `$Number$`), if the session's range holds it.
fn asked_fragment<'a>(
    claims: &Claims,
    stored: &'a [StoredFragment],
    query: &[(String, String)],
) -> Result<&'a StoredFragment, ApiError> {
    let (asked, number) = match (
        param(query, "FragmentNumber"),
        param(query, "SequenceNumber"),
    ) {
        (Some(number), _) => (number, number.to_owned()),
        (None, Some(sequence)) => match sequence.parse::<u128>() {
            Ok(n) => (
                sequence,
                (crate::store::disk::FIRST_FRAGMENT_NUMBER.saturating_add(n)).to_string(),
            ),
            Err(_) => {
                return Err(ApiError::invalid_argument(
                    "SequenceNumber must be a number.",
                ))
            }
        },
        (None, None) => {
            return Err(ApiError::invalid_argument(
                "FragmentNumber (or SequenceNumber) is required.",
            ))
        }
    };
    stored
        .iter()
        .find(|f| f.meta.fragment_number == number && session::admits(claims, &f.meta))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Fragment {} is not in this session's stream or range.",
                crate::validate::shown(asked)
            ))
        })
}

/// Codecs, resolution and bandwidth for the master playlist or the manifest.
fn describe(
    read: &ReadFragment,
    stored: &[StoredFragment],
    selection: &Selection,
) -> Result<MasterInfo, ApiError> {
    let video = read
        .video
        .as_ref()
        .ok_or_else(|| super::missing_codec_private_data("in the session"))?;
    Ok(MasterInfo {
        video_codec: hls::avc_codec(&video.avcc).unwrap_or_else(|| "avc1".into()),
        audio_codec: read
            .audio
            .as_ref()
            .map(|a| hls::aac_codec(&a.audio_specific_config)),
        width: video.width,
        height: video.height,
        bandwidth: bandwidth(stored, selection),
    })
}

/// The DASH manifest of what the session lists now.
fn manifest(
    claims: &Claims,
    stored: &[StoredFragment],
    selection: &Selection,
    read: &ReadFragment,
    info: MasterInfo,
    now_ms: i64,
) -> dash::Manifest {
    let segments = selection
        .listed
        .iter()
        .map(|&i| {
            let meta = &stored[i].meta;
            dash::Segment {
                number: session::media_sequence(meta),
                start_ms: meta.producer_timestamp_ms,
                duration_ms: meta.fragment_length_ms,
                fragment_number: claims
                    .display_fragment_number
                    .then(|| meta.fragment_number.clone()),
                timestamp_ms: claims
                    .display_timestamp
                    .then(|| session::timestamp(claims.kind, meta)),
            }
        })
        .collect();
    dash::Manifest {
        dynamic: !selection.ended,
        now_ms,
        tracks: dash::Tracks {
            video_codec: info.video_codec,
            width: info.width,
            height: info.height,
            audio: info
                .audio_codec
                .zip(read.audio.as_ref().map(|a| a.sample_rate)),
            bandwidth: info.bandwidth,
        },
        segments,
    }
}

fn segment_error(e: SegmentError, fragment: &str) -> ApiError {
    match e {
        SegmentError::MissingCodecPrivateData => super::missing_codec_private_data(fragment),
        SegmentError::NoSuchTrack(n) => {
            ApiError::not_found(format!("The stream has no track {n}."))
        }
    }
}

/// How many of the newest listed fragments are looked at for audio frames.
const AUDIO_LOOKBACK: usize = 5;

/// The fragment whose codec private data the session's init fragments, master playlist and
/// manifest describe: the newest one listed (for LIVE, the stream as it is now). Its number and
/// contents; its audio track is left out unless it, or one of the [`AUDIO_LOOKBACK`] newest
/// listed fragments, has audio frames, so a stream whose device sends no audio plays as video
/// alone.
fn codec_fragment(
    claims: &Claims,
    stored: &[StoredFragment],
    selection: &Selection,
) -> Result<(String, ReadFragment), ApiError> {
    let Some(&newest) = selection.listed.last() else {
        return Err(ApiError::not_found(format!(
            "No fragments found in the stream {} for this session.",
            claims.stream
        )));
    };
    let fragment = &stored[newest];
    let mut read = super::read(fragment)?;
    if !super::has_audio_frames(&read) {
        let mut with_audio = None;
        for &i in selection
            .listed
            .iter()
            .rev()
            .skip(1)
            .take(AUDIO_LOOKBACK - 1)
        {
            let older = super::read(&stored[i])?;
            if super::has_audio_frames(&older) {
                with_audio = older.audio;
                break;
            }
        }
        read.audio = with_audio;
    }
    Ok((fragment.meta.fragment_number.clone(), read))
}

/// The peak bit rate over the listed fragments (bits per second).
fn bandwidth(stored: &[StoredFragment], selection: &Selection) -> u64 {
    selection
        .listed
        .iter()
        .map(|&i| {
            let m = &stored[i].meta;
            m.fragment_size_bytes * 8 * 1000 / m.fragment_length_ms.max(1) as u64
        })
        .max()
        .unwrap_or(0)
}

/// The media playlist of `track` for what the session lists now.
fn media_playlist(
    claims: &Claims,
    stored: &[StoredFragment],
    selection: &Selection,
    track: u8,
) -> MediaPlaylist {
    let entries = selection
        .listed
        .iter()
        .zip(&selection.discontinuity)
        .map(|(&i, &discontinuity)| {
            let meta = &stored[i].meta;
            Entry {
                fragment_number: meta.fragment_number.clone(),
                duration_ms: meta.fragment_length_ms,
                date_ms: claims
                    .display_timestamp
                    .then(|| session::timestamp(claims.kind, meta)),
                discontinuity,
            }
        })
        .collect();
    MediaPlaylist {
        track,
        media_sequence: selection
            .listed
            .first()
            .map_or(0, |&i| session::media_sequence(&stored[i].meta)),
        discontinuity_sequence: selection.discontinuity_sequence,
        entries,
        vod: claims.mode == PlaybackMode::OnDemand,
        ended: selection.ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(token: &str) -> Vec<(String, String)> {
        vec![
            ("SessionToken".to_owned(), token.to_owned()),
            ("TrackNumber".to_owned(), "1".to_owned()),
        ]
    }

    #[test]
    fn an_expired_altered_or_missing_token_gets_the_services_error() {
        let key = TokenKey::from_bytes([3; 32]);
        let claims = super::super::token::tests::claims("cam");
        let token = key.sign(&claims);
        assert_eq!(
            verified(&key, &query(&token), claims.expires_ms - 1),
            Ok(claims.clone())
        );
        let expired = verified(&key, &query(&token), claims.expires_ms).unwrap_err();
        assert_eq!(
            (expired.status.as_u16(), expired.code),
            (401, "NotAuthorizedException")
        );
        assert!(expired.message.contains("expired"), "{}", expired.message);
        let last = if token.ends_with('x') { 'y' } else { 'x' };
        let altered = format!("{}{last}", &token[..token.len() - 1]);
        let err = verified(&key, &query(&altered), claims.created_ms).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.code),
            (401, "NotAuthorizedException")
        );
        let other_key = TokenKey::from_bytes([4; 32]);
        let err = verified(&other_key, &query(&token), claims.created_ms).unwrap_err();
        assert_eq!(err.code, "NotAuthorizedException");
        for missing in [vec![], query("")] {
            let err = verified(&key, &missing, claims.created_ms).unwrap_err();
            assert_eq!(
                (err.status.as_u16(), err.code),
                (400, "InvalidArgumentException")
            );
        }
    }

    #[test]
    fn track_numbers_are_1_2_or_none() {
        let q = |v: &str| vec![("TrackNumber".to_owned(), v.to_owned())];
        assert_eq!(track(&[]), Ok(None));
        assert_eq!(track(&q("1")), Ok(Some(VIDEO_TRACK)));
        assert_eq!(track(&q("2")), Ok(Some(AUDIO_TRACK)));
        assert_eq!(track(&q("3")).unwrap_err().code, "InvalidArgumentException");
    }
}
