//! The text of HLS playlists (RFC 8216, version 7 for fMP4 with `EXT-X-MAP`): the master
//! playlist with a variant per video track and an audio rendition, and a media playlist per
//! track. Pure functions of what the session selected; the routes fill them in.
//!
//! URIs are relative (`getHLSMediaPlaylist.m3u8?...`), as the service writes them: they resolve
//! against the master playlist's `/hls/v1/` path.

use std::fmt::Write as _;

/// The track number of video in the service's URLs (`TrackNumber=1`).
pub(crate) const VIDEO_TRACK: u8 = 1;
/// The track number of audio (`TrackNumber=2`).
pub(crate) const AUDIO_TRACK: u8 = 2;

/// What the master playlist says about the stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MasterInfo {
    /// The video's `CODECS` entry (`avc1.PPCCLL`).
    pub video_codec: String,
    /// The audio's `CODECS` entry (`mp4a.40.2`), when the stream has AAC.
    pub audio_codec: Option<String>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Peak bits per second over the session's fragments (`BANDWIDTH`).
    pub bandwidth: u64,
}

/// The master playlist: one variant (the video track's media playlist) and, with audio, an
/// audio rendition group with the audio track's media playlist.
pub(crate) fn master(info: &MasterInfo, token: &str) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut codecs = info.video_codec.clone();
    let mut audio_group = String::new();
    if let Some(audio) = &info.audio_codec {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"{}\"",
            media_playlist_uri(token, AUDIO_TRACK)
        );
        codecs.push(',');
        codecs.push_str(audio);
        audio_group = ",AUDIO=\"audio\"".to_owned();
    }
    let _ = writeln!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{codecs}\",RESOLUTION={}x{}{audio_group}",
        info.bandwidth.max(1),
        info.width,
        info.height
    );
    let _ = writeln!(out, "{}", media_playlist_uri(token, VIDEO_TRACK));
    out
}

fn media_playlist_uri(token: &str, track: u8) -> String {
    format!("getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber={track}")
}

/// One fragment of a media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its fragment number.
    pub fragment_number: String,
    /// Its duration in ms.
    pub duration_ms: i64,
    /// `#EXT-X-PROGRAM-DATE-TIME` before it, ms since the epoch (DisplayFragmentTimestamp).
    pub date_ms: Option<i64>,
    /// `#EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
}

/// A media playlist's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaPlaylist {
    /// [`VIDEO_TRACK`] or [`AUDIO_TRACK`].
    pub track: u8,
    /// `#EXT-X-MEDIA-SEQUENCE`: the first entry's sequence number.
    pub media_sequence: u64,
    /// `#EXT-X-DISCONTINUITY-SEQUENCE`: discontinuities before the first entry (written when
    /// not 0).
    pub discontinuity_sequence: u64,
    /// The fragments, oldest first.
    pub entries: Vec<Entry>,
    /// `#EXT-X-PLAYLIST-TYPE:VOD` (ON_DEMAND).
    pub vod: bool,
    /// `#EXT-X-ENDLIST`: no fragment will be added.
    pub ended: bool,
}

/// The media playlist of one track: `EXT-X-MAP` to the track's init fragment, then per
/// fragment its markers, `#EXTINF` and its `getMP4MediaFragment.mp4` URI.
pub(crate) fn media(playlist: &MediaPlaylist, token: &str) -> String {
    let track = playlist.track;
    // Each EXTINF rounded to the nearest second must not exceed it (RFC 8216 §4.3.3.1).
    let target = playlist
        .entries
        .iter()
        .map(|e| (e.duration_ms.max(0) + 999) / 1000)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", playlist.media_sequence);
    if playlist.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            playlist.discontinuity_sequence
        );
    }
    if playlist.vod {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(
        out,
        "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken={token}&TrackNumber={track}\""
    );
    for entry in &playlist.entries {
        if entry.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(ms) = entry.date_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_ms(ms));
        }
        let _ = writeln!(
            out,
            "#EXTINF:{}.{:03},",
            entry.duration_ms.max(0) / 1000,
            entry.duration_ms.max(0) % 1000
        );
        let _ = writeln!(
            out,
            "getMP4MediaFragment.mp4?SessionToken={token}&FragmentNumber={}&TrackNumber={track}",
            entry.fragment_number
        );
    }
    if playlist.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The `CODECS` entry of an H.264 track (`avc1.PPCCLL`: profile, constraint flags and level,
/// RFC 6381 §3.3) from its AVCDecoderConfigurationRecord, whose bytes 1-3 copy them from the
/// SPS; `None` when it is too short or not version 1.
pub(crate) fn avc_codec(avcc: &[u8]) -> Option<String> {
    match avcc {
        [1, profile, constraints, level, ..] => {
            Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
        }
        _ => None,
    }
}

/// The `CODECS` entry of an AAC track (`mp4a.40.<audio object type>`, e.g. `mp4a.40.2` for
/// AAC-LC) from its AudioSpecificConfig; `mp4a.40.2` when it cannot be read.
pub(crate) fn aac_codec(asc: &[u8]) -> String {
    let object_type = asc.first().map_or(2, |b| b >> 3);
    let object_type = if object_type == 0 || object_type == 31 {
        2
    } else {
        object_type
    };
    format!("mp4a.40.{object_type}")
}

/// `ms` since the epoch as an ISO 8601 UTC date-time with milliseconds
/// (`2026-12-05T07:00:00.123Z`), as `#EXT-X-PROGRAM-DATE-TIME` takes it.
pub(crate) fn iso8601_ms(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: &str, duration_ms: i64) -> Entry {
        Entry {
            fragment_number: n.to_owned(),
            duration_ms,
            date_ms: None,
            discontinuity: false,
        }
    }

    #[test]
    fn the_master_playlist_names_codecs_resolution_and_the_audio_rendition() {
        let info = MasterInfo {
            video_codec: avc_codec(&[1, 0x42, 0xc0, 0x1e, 0xff]).unwrap(),
            audio_codec: Some(aac_codec(&[0x11, 0x90])),
            width: 320,
            height: 240,
            bandwidth: 250_000,
        };
        assert_eq!(
            master(&info, "T.S"),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"getHLSMediaPlaylist.m3u8?SessionToken=T.S&TrackNumber=2\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=250000,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=320x240,AUDIO=\"audio\"\n\
             getHLSMediaPlaylist.m3u8?SessionToken=T.S&TrackNumber=1\n"
        );
        let video_only = master(
            &MasterInfo {
                audio_codec: None,
                ..info
            },
            "T.S",
        );
        assert!(!video_only.contains("AUDIO"), "{video_only}");
        assert!(
            video_only.contains("CODECS=\"avc1.42c01e\",RESOLUTION=320x240\n"),
            "{video_only}"
        );
    }

    #[test]
    fn codecs_come_from_the_codec_private_data() {
        assert_eq!(
            avc_codec(&[1, 0x64, 0x00, 0x28, 0xff]).as_deref(),
            Some("avc1.640028")
        );
        assert_eq!(avc_codec(&[0, 0x64, 0x00, 0x28]), None);
        assert_eq!(avc_codec(&[1, 0x64]), None);
        // AAC-LC (2), HE-AAC (5).
        assert_eq!(aac_codec(&[0x12, 0x10]), "mp4a.40.2");
        assert_eq!(aac_codec(&[0x2b, 0x92]), "mp4a.40.5");
    }

    #[test]
    fn an_on_demand_playlist_lists_every_fragment_and_ends() {
        let playlist = MediaPlaylist {
            track: VIDEO_TRACK,
            media_sequence: 7,
            discontinuity_sequence: 0,
            entries: vec![entry("100", 1000), entry("101", 1040), entry("102", 2001)],
            vod: true,
            ended: true,
        };
        let text = media(&playlist, "T.S");
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=T.S&TrackNumber=1\"\n\
             #EXTINF:1.000,\ngetMP4MediaFragment.mp4?SessionToken=T.S&FragmentNumber=100&TrackNumber=1\n\
             #EXTINF:1.040,\ngetMP4MediaFragment.mp4?SessionToken=T.S&FragmentNumber=101&TrackNumber=1\n\
             #EXTINF:2.001,\ngetMP4MediaFragment.mp4?SessionToken=T.S&FragmentNumber=102&TrackNumber=1\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn a_live_playlist_has_markers_and_dates_but_no_end() {
        let mut second = entry("2", 1000);
        second.discontinuity = true;
        second.date_ms = Some(1_780_000_001_000);
        let mut first = entry("1", 1000);
        first.date_ms = Some(1_780_000_000_000);
        let text = media(
            &MediaPlaylist {
                track: AUDIO_TRACK,
                media_sequence: 1,
                discontinuity_sequence: 4,
                entries: vec![first, second],
                vod: false,
                ended: false,
            },
            "T.S",
        );
        assert!(!text.contains("ENDLIST") && !text.contains("VOD"), "{text}");
        assert!(
            text.contains("#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-DISCONTINUITY-SEQUENCE:4\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "#EXT-X-PROGRAM-DATE-TIME:2026-05-28T20:26:40.000Z\n#EXTINF:1.000,\ngetMP4MediaFragment.mp4?SessionToken=T.S&FragmentNumber=1&TrackNumber=2\n\
                 #EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-05-28T20:26:41.000Z\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    }

    #[test]
    fn dates_are_iso8601_utc_with_milliseconds() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601_ms(1_796_454_245_999), "2026-12-05T07:04:05.999Z");
    }
}
