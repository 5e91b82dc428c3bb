"""boto3 asks for HLS (and DASH) streaming session URLs of a stream the emulator stores, as a user would
(GetDataEndpoint with GET_HLS_STREAMING_SESSION_URL, then kinesis-video-archived-media
GetHLSStreamingSessionURL against the endpoint it returned), and ffprobe, ffmpeg and plain HTTPS
requests play what the URL serves. Bad input gets the service's errors.

Run by tests/hls.rs with KVS_ENDPOINT, KVS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_CA_BUNDLE, KVS_STREAM, KVS_PHASE and, for the on_demand phase, KVS_EXPECTED (the fragments
the inspection API lists, JSON). Phases:
- live: while the stream is being ingested: the master playlist's codecs and resolution, a
  media playlist of the newest fragments that grows as fragments are stored, ffprobe and a
  silent ffmpeg decode of the live URL;
- on_demand: after ingestion: the whole stream as a VOD playlist (every fragment, with its
  date), ffprobe and a silent ffmpeg decode, the other modes and options, then bad input
  (ranges, container, tokens altered, of a deleted stream, of another stream, no SessionToken,
  unknown fragment, LIVE without recent media);
- video_only: a stream without audio: a playlist without audio that ffmpeg plays.
Any failed check raises: the process exits non-zero.
"""

import base64
import datetime
import json
import math
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import botocore.exceptions

from emulator_clients import client

ENDPOINT = os.environ["KVS_ENDPOINT"]
REGION = os.environ["KVS_REGION"]
CA = os.environ["AWS_CA_BUNDLE"]
STREAM = os.environ["KVS_STREAM"]
PHASE = os.environ["KVS_PHASE"]
TLS = ssl.create_default_context(cafile=CA)
# ffmpeg verifies the emulator's certificate against its CA (the first request; ffmpeg does not
# pass these options on to the playlists and fragments it fetches next).
FF_TLS = ["-tls_verify", "1", "-ca_file", CA]


def expect_error(code, call):
    try:
        call()
    except botocore.exceptions.ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err.response}"
        return err.response["Error"]["Message"]
    raise AssertionError(f"expected {code}, the call succeeded")


def get(url):
    """GET without any signature: (status, error type or None, body bytes)."""
    try:
        with urllib.request.urlopen(url, context=TLS, timeout=30) as resp:
            return resp.status, None, resp.read()
    except urllib.error.HTTPError as err:
        kind = (err.headers.get("x-amzn-ErrorType") or "").split(":")[0]
        return err.code, kind, err.read()


# A playlist is polled 4 times a second: the service serves a session's playlists at most 5
# times a second (ClientLimitExceededException beyond), and so does the emulator. For the same
# reason every player (ffprobe, ffmpeg, a loop over the fragments) gets a session of its own, as
# real players do: the service serves a session's media fragments at most 20 times a second.
POLL = 0.25


def text(url):
    status, kind, body = get(url)
    assert status == 200, f"{url}: {status} {kind} {body[:300]}"
    return body.decode()


def expect_refusal(url, status, kind, words=""):
    got = get(url)
    assert got[0] == status and got[1] == kind, f"expected {status} {kind}, got {got[0]} {got[1]}: {got[2][:300]}"
    message = json.loads(got[2])["Message"]
    assert words in message, message
    return message


def selector(start, end=None, kind="PRODUCER_TIMESTAMP"):
    rng = {"StartTimestamp": start}
    if end is not None:
        rng["EndTimestamp"] = end
    return {"FragmentSelectorType": kind, "TimestampRange": rng}


def variants(master_url):
    """The master playlist, and the absolute URLs of its video and audio media playlists."""
    master = text(master_url)
    lines = master.splitlines()
    assert lines[0] == "#EXTM3U", master
    video = urllib.parse.urljoin(master_url, lines[lines.index(next(l for l in lines if l.startswith("#EXT-X-STREAM-INF"))) + 1])
    audio = re.search(r'#EXT-X-MEDIA:TYPE=AUDIO.*URI="([^"]+)"', master)
    return master, video, audio and urllib.parse.urljoin(master_url, audio.group(1))


def parse_media(playlist):
    """Media sequence, entries [(fragment number, duration s, date or None, discontinuity)],
    tags seen, the init fragment's URI."""
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist).group(1))
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist).group(1)
    entries, date, disc, duration = [], None, False, None
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = line.split(":", 1)[1]
        elif line == "#EXT-X-DISCONTINUITY":
            disc = True
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:"):].rstrip(","))
        elif line and not line.startswith("#"):
            number = urllib.parse.parse_qs(urllib.parse.urlparse(line).query)["FragmentNumber"][0]
            entries.append((number, duration, date, disc))
            date, disc = None, False
    return sequence, entries, init


def probe(url):
    out = subprocess.run(
        ["ffprobe", "-v", "error", *FF_TLS, "-show_entries", "stream=codec_name,width,height:format=duration", "-of", "json", url],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return json.loads(out.stdout)


def decode(url, *limit):
    out = subprocess.run(
        ["ffmpeg", "-v", "error", *FF_TLS, "-i", url, *limit, "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0 and out.stderr == "", f"ffmpeg {url}: {out.returncode} {out.stderr}"


def tfdt(segment):
    """The base media decode time of a one-track media segment."""
    at = segment.index(b"tfdt")
    version = segment[at + 4]
    return int.from_bytes(segment[at + 8:at + (16 if version == 1 else 12)], "big")


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def session_url(am, **kwargs):
    url = am.get_hls_streaming_session_url(StreamName=STREAM, **kwargs)["HLSStreamingSessionURL"]
    assert url.startswith(ENDPOINT + "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken="), url
    return url


def token_of(url):
    return urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["SessionToken"][0]


def with_token(url, token):
    return re.sub(r"SessionToken=[^&]*", "SessionToken=" + token, url)


MPD_NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}
KVS_NS = "{https://kinesisvideo.amazonaws.com/ns/dash}"


def dash_url(am, **kwargs):
    url = am.get_dash_streaming_session_url(StreamName=STREAM, **kwargs)["DASHStreamingSessionURL"]
    assert url.startswith(ENDPOINT + "/dash/v1/getDASHManifest.mpd?SessionToken="), url
    return url


def manifest(url):
    """The MPD's root, and per adaptation set (content type, representation, S elements)."""
    root = ET.fromstring(get(url)[2])
    sets = []
    for adaptation in root.iterfind(".//mpd:AdaptationSet", MPD_NS):
        representation = adaptation.find("mpd:Representation", MPD_NS)
        timeline = representation.findall(".//mpd:S", MPD_NS)
        sets.append((adaptation.get("contentType"), representation.attrib, timeline))
    return root, sets


def check_master(master, audio=True):
    codecs = re.search(r'CODECS="([^"]+)"', master).group(1).split(",")
    assert re.fullmatch(r"avc1\.[0-9a-f]{6}", codecs[0]), codecs
    assert codecs[1:] == (["mp4a.40.2"] if audio else []), codecs
    assert "RESOLUTION=320x240" in master, master
    assert ("#EXT-X-MEDIA:TYPE=AUDIO" in master) == audio, master


def live(am):
    url = session_url(am, PlaybackMode="LIVE")
    master, video, audio = variants(url)
    check_master(master)
    sequence, entries, init = parse_media(text(video))
    assert 1 <= len(entries) <= 5, entries
    assert "#EXT-X-ENDLIST" not in text(video)
    init_bytes = get(urllib.parse.urljoin(video, init))[2]
    assert init_bytes[4:8] == b"ftyp", init_bytes[:16]
    # New fragments appear as they are stored, and the window moves on: with at most two
    # listed (the stream already keeps three), each new one pushes the oldest out and the media
    # sequence number grows with the fragment numbers.
    two = session_url(am, PlaybackMode="LIVE", MaxMediaPlaylistFragmentResults=2,
                      DisplayFragmentTimestamp="ALWAYS")
    _, two_video, _ = variants(two)
    sequence, entries, _ = parse_media(text(two_video))
    assert len(entries) == 2 and int(entries[1][0]) == int(entries[0][0]) + 1, entries
    asked = time.monotonic()
    while True:
        later_sequence, later, _ = parse_media(text(two_video))
        if int(later[-1][0]) > int(entries[-1][0]):
            break
        assert time.monotonic() - asked < 20, f"no new fragment in the live playlist: {later}"
        time.sleep(POLL)
    listed_at = time.time()
    started = datetime.datetime.strptime(later[-1][2], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    print(f"live: a new fragment listed {time.monotonic() - asked:.2f} s after the first playlist, "
          f"{listed_at - started.timestamp():.2f} s after its first frame reached the emulator")
    assert len(later) == 2, later
    assert later_sequence - sequence == int(later[0][0]) - int(entries[0][0]) > 0, (sequence, entries, later_sequence, later)
    # Audio has its own playlist over the same fragments.
    _, audio_entries, _ = parse_media(text(audio))
    assert audio_entries, audio_entries
    info = probe(session_url(am, PlaybackMode="LIVE"))
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"], info
    decode(session_url(am, PlaybackMode="LIVE"), "-t", "3")
    print("live: ffprobe sees h264 + aac, ffmpeg decodes 3 s silently")

    # DASH: a dynamic manifest over the newest fragments.
    mpd = dash_url(am, PlaybackMode="LIVE")
    root, sets = manifest(mpd)
    assert root.get("type") == "dynamic", root.attrib
    assert [s[0] for s in sets] == ["video", "audio"], sets
    assert 1 <= len(sets[0][2]) <= 5, sets[0][2]
    info = probe(dash_url(am, PlaybackMode="LIVE"))
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"], info
    # Every listed segment is served, starting where the timeline says. (No ffmpeg decode of
    # the live manifest: FFmpeg 5.1's dash demuxer, on each manifest refresh, rounds its
    # position down to a whole second (dashdec.c, refresh_manifest) and so fetches a segment
    # again when segments do not start on whole seconds: "non monotonically increasing dts".
    # The on-demand manifest is decoded below.)
    token = token_of(mpd)
    for track, (_, _, timeline) in zip((1, 2), sets):
        number = int(root.find(".//mpd:AdaptationSet[@id='%d']//mpd:SegmentTemplate" % track, MPD_NS).get("startNumber"))
        for offset, element in enumerate(timeline):
            status, _, body = get(f"{ENDPOINT}/dash/v1/getMP4MediaFragment.mp4?SessionToken={token}"
                                  f"&TrackNumber={track}&SequenceNumber={number + offset}")
            assert status == 200 and body[4:8] == b"moof", (status, body[:16])
            rate = 90_000 if track == 1 else 48_000
            late = tfdt(body) - int(element.get("t")) * rate // 1000
            if track == 1:
                # A video segment starts with the keyframe that starts the fragment.
                assert abs(late) <= rate // 1000, (late, element.attrib)
            else:
                # An audio segment starts with the first AAC frame (1024 samples) stamped at or
                # after that keyframe: never before it, less than one frame after it (stamps
                # are whole milliseconds).
                assert -rate // 1000 <= late < 1024 + rate // 1000, (late, element.attrib)
    print("live DASH: a dynamic manifest; ffprobe sees h264 + aac; every segment served where the timeline puts it")


def on_demand(am, kv):
    expected = json.loads(os.environ["KVS_EXPECTED"])
    total = sum(e["fragmentLengthMs"] for e in expected) / 1000
    # botocore sends whole seconds: from the first fragment's second to past the last one's.
    start = expected[0]["producerTimestampMs"] // 1000
    end = math.ceil(expected[-1]["producerTimestampMs"] / 1000) + 1
    request = dict(PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector(start, end),
                   DisplayFragmentTimestamp="ALWAYS", Expires=43200)
    url = session_url(am, **request)
    master, video, audio = variants(url)
    check_master(master)
    for playlist_url in (video, audio):
        playlist = text(playlist_url)
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST"), playlist
        _, entries, _ = parse_media(playlist)
        assert [e[0] for e in entries] == [f["fragmentNumber"] for f in expected], entries
        assert [round(e[1] * 1000) for e in entries] == [f["fragmentLengthMs"] for f in expected], entries
        assert [e[2] for e in entries] == [iso(f["producerTimestampMs"]) for f in expected], entries
        assert not any(e[3] for e in entries), "no markers by default for producer timestamps"
    info = probe(session_url(am, **request))
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"], info
    video_stream = next(s for s in info["streams"] if s["codec_name"] == "h264")
    assert (video_stream["width"], video_stream["height"]) == (320, 240), video_stream
    duration = float(info["format"]["duration"])
    assert abs(duration - total) < 0.25, f"the playlist lasts {duration} s, the fragments {total} s"
    decode(session_url(am, **request))
    print(f"on-demand: {len(expected)} fragments, {duration:.2f} s; ffprobe sees h264 + aac, ffmpeg decodes silently")
    # How long one fragment takes to serve (read back from Matroska, packaged as fMP4).
    took = []
    timed = token_of(session_url(am, **request))
    for f in expected:
        for track in (1, 2):
            asked = time.monotonic()
            status, _, body = get(f"{ENDPOINT}/hls/v1/getMP4MediaFragment.mp4?SessionToken={timed}"
                                  f"&FragmentNumber={f['fragmentNumber']}&TrackNumber={track}")
            took.append(time.monotonic() - asked)
            assert status == 200 and body[4:8] == b"moof", (status, body[:16])
    print(f"on-demand: a 1 s fragment's track served in {1000 * sum(took) / len(took):.1f} ms on average, "
          f"{1000 * max(took):.1f} ms at most (debug build, a new TLS connection each)")

    # The AWS CLI's URL serves the same playlist (dates aside).
    cli = subprocess.run(
        ["aws", "kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", STREAM,
         "--playback-mode", "ON_DEMAND", "--hls-fragment-selector", json.dumps(selector(start, end)),
         "--endpoint-url", ENDPOINT, "--region", REGION, "--ca-bundle", CA,
         "--query", "HLSStreamingSessionURL", "--output", "text"],
        capture_output=True, text=True, timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    _, cli_entries, _ = parse_media(text(variants(cli.stdout.strip())[1]))
    assert [e[0] for e in cli_entries] == [f["fragmentNumber"] for f in expected], cli_entries

    # Server timestamps: markers between every fragment by default, none with NEVER.
    server_start = expected[0]["serverTimestampMs"] // 1000
    server_end = min(math.ceil(expected[-1]["serverTimestampMs"] / 1000) + 1, int(time.time()))
    by_server = session_url(am, PlaybackMode="ON_DEMAND",
                            HLSFragmentSelector=selector(server_start, server_end, "SERVER_TIMESTAMP"),
                            DisplayFragmentTimestamp="ALWAYS")
    _, entries, _ = parse_media(text(variants(by_server)[1]))
    in_range = [f for f in expected if f["serverTimestampMs"] <= server_end * 1000]
    assert [e[0] for e in entries] == [f["fragmentNumber"] for f in in_range], entries
    assert [e[3] for e in entries] == [False] + [True] * (len(entries) - 1), entries
    assert [e[2] for e in entries] == [iso(f["serverTimestampMs"]) for f in in_range], entries
    decode(by_server)
    gaps = sum(1 for a, b in zip(expected, expected[1:])
               if abs(b["producerTimestampMs"] - a["producerTimestampMs"] - a["fragmentLengthMs"]) > 1)
    on_gaps = session_url(am, PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector(start, end),
                          DiscontinuityMode="ON_DISCONTINUITY")
    _, entries, _ = parse_media(text(variants(on_gaps)[1]))
    assert sum(e[3] for e in entries) == gaps, (gaps, entries)
    # The first two fragments only; LIVE_REPLAY of a closed range ends once it is all listed.
    two = session_url(am, PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector(start, end),
                      MaxMediaPlaylistFragmentResults=2)
    _, entries, _ = parse_media(text(variants(two)[1]))
    assert [e[0] for e in entries] == [f["fragmentNumber"] for f in expected[:2]], entries
    replay = session_url(am, PlaybackMode="LIVE_REPLAY", HLSFragmentSelector=selector(start))
    _, entries, _ = parse_media(text(variants(replay)[1]))
    assert entries and entries[0][0] == expected[0]["fragmentNumber"], entries
    # A closed replay of the first fragments: listed at their pace, then ended.
    replay_end = math.ceil(expected[1]["producerTimestampMs"] / 1000)
    in_replay = [f["fragmentNumber"] for f in expected if f["producerTimestampMs"] <= replay_end * 1000]
    replay = session_url(am, PlaybackMode="LIVE_REPLAY", HLSFragmentSelector=selector(start, replay_end))
    replay_video = variants(replay)[1]
    asked = time.monotonic()
    while "#EXT-X-ENDLIST" not in (playlist := text(replay_video)):
        assert time.monotonic() - asked < 10, f"the closed replay never ends: {playlist}"
        time.sleep(POLL)
    assert [e[0] for e in parse_media(playlist)[1]] == in_replay[-5:], (in_replay, playlist)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" not in playlist
    print(f"live replay: {len(in_replay)} fragments listed and ended after {time.monotonic() - asked:.2f} s")

    # DASH over the same range, with the kvs: attributes.
    dash_request = dict(PlaybackMode="ON_DEMAND", DASHFragmentSelector=selector(start, end),
                        DisplayFragmentNumber="ALWAYS", DisplayFragmentTimestamp="ALWAYS")
    mpd = dash_url(am, **dash_request)
    root, sets = manifest(mpd)
    assert root.get("type") == "static", root.attrib
    assert [s[0] for s in sets] == ["video", "audio"], sets
    assert (sets[0][1]["width"], sets[0][1]["height"]) == ("320", "240"), sets[0][1]
    assert re.fullmatch(r"avc1\.[0-9a-f]{6}", sets[0][1]["codecs"]) and sets[1][1]["codecs"] == "mp4a.40.2", sets
    for _, _, timeline in sets:
        assert [e.get(KVS_NS + "fn") for e in timeline] == [f["fragmentNumber"] for f in expected], timeline
        assert [int(e.get(KVS_NS + "ts")) for e in timeline] == [f["producerTimestampMs"] for f in expected]
        assert [int(e.get("d")) for e in timeline] == [f["fragmentLengthMs"] for f in expected]
    info = probe(dash_url(am, **dash_request))
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"], info
    declared = root.get("mediaPresentationDuration")
    assert declared == f"PT{int(total)}.{round(total * 1000) % 1000:03d}S", (declared, total)
    # FFmpeg 5.1 reads that duration in whole seconds (dash.c, get_duration_insec).
    dash_duration = float(info["format"]["duration"])
    assert int(total) <= dash_duration <= total + 0.1, f"ffprobe: {dash_duration} s, the fragments {total} s"
    decode(dash_url(am, **dash_request))
    plain = dash_url(am, PlaybackMode="ON_DEMAND", DASHFragmentSelector=selector(start, end),
                     MaxManifestFragmentResults=2)
    _, sets = manifest(plain)
    assert len(sets[0][2]) == 2 and sets[0][2][0].get(KVS_NS + "fn") is None, sets
    # A token opens its own protocol's paths only.
    expect_refusal(f"{ENDPOINT}/dash/v1/getDASHManifest.mpd?SessionToken={token_of(url)}", 401, "NotAuthorizedException")
    expect_refusal(with_token(url, token_of(mpd)), 401, "NotAuthorizedException")
    message = expect_error("InvalidArgumentException", lambda: am.get_dash_streaming_session_url(
        StreamName=STREAM, PlaybackMode="ON_DEMAND", DASHFragmentSelector=selector(end, start)))
    assert "later than" in message, message
    print(f"on-demand DASH: {len(expected)} fragments with kvs:fn and kvs:ts, {dash_duration:.2f} s; "
          "ffprobe sees h264 + aac, ffmpeg decodes silently")

    # Bad input.
    message = expect_error("InvalidArgumentException", lambda: am.get_hls_streaming_session_url(
        StreamName=STREAM, PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector(end, start)))
    assert "later than" in message, message
    message = expect_error("InvalidArgumentException", lambda: am.get_hls_streaming_session_url(
        StreamName=STREAM, PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector(start, start + 86_401)))
    assert "24 hours" in message, message
    message = expect_error("InvalidArgumentException", lambda: am.get_hls_streaming_session_url(
        StreamName=STREAM, PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector(start, end),
        ContainerFormat="MPEG_TS"))
    assert "not supported by the emulator" in message, message
    expect_error("InvalidArgumentException", lambda: am.get_hls_streaming_session_url(
        StreamName=STREAM, PlaybackMode="LIVE", HLSFragmentSelector=selector(start, end)))
    message = expect_error("ResourceNotFoundException", lambda: am.get_hls_streaming_session_url(
        StreamName=STREAM, PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector(1_000_000, 1_000_100)))
    assert "No fragments found" in message, message
    expect_error("ResourceNotFoundException", lambda: am.get_hls_streaming_session_url(
        StreamName="no-such-stream", PlaybackMode="LIVE"))
    kv.create_stream(StreamName="hls-empty-stream", DataRetentionInHours=1)
    message = expect_error("ResourceNotFoundException", lambda: am.get_hls_streaming_session_url(
        StreamName="hls-empty-stream", PlaybackMode="LIVE"))
    assert "No fragments found" in message, message
    # LIVE needs media stored in the last seconds (the test emulator's window is short).
    asked = time.monotonic()
    while True:
        try:
            am.get_hls_streaming_session_url(StreamName=STREAM, PlaybackMode="LIVE")
        except botocore.exceptions.ClientError as err:
            assert err.response["Error"]["Code"] == "ResourceNotFoundException", err.response
            assert "No fragments found" in err.response["Error"]["Message"], err.response
            break
        assert time.monotonic() - asked < 30, "LIVE is still served long after ingestion ended"
        time.sleep(POLL)
    print("refusals: ranges, container, unknown and empty streams, LIVE without recent media")

    # Tokens. An altered signature, another session's claims under this signature, none.
    token = token_of(url)
    payload, signature = token.split(".")
    altered = payload + "." + ("A" if signature[5] != "A" else "B").join([signature[:5], signature[6:]])
    fragment = f"{ENDPOINT}/hls/v1/getMP4MediaFragment.mp4?SessionToken={token}&FragmentNumber={expected[0]['fragmentNumber']}&TrackNumber=1"
    assert get(fragment)[2][4:8] == b"moof"
    for target in (url, video, fragment):
        expect_refusal(with_token(target, altered), 401, "NotAuthorizedException", "not valid")
    other_payload = token_of(two).split(".")[0]
    expect_refusal(with_token(url, other_payload + "." + signature), 401, "NotAuthorizedException")
    expect_refusal(re.sub(r"SessionToken=[^&]*&?", "", video), 400, "InvalidArgumentException", "SessionToken")
    expect_refusal(fragment.replace(expected[0]["fragmentNumber"], "12345"), 404, "ResourceNotFoundException")
    expect_refusal(video.replace("TrackNumber=1", "TrackNumber=3"), 400, "InvalidArgumentException")
    # The stream deleted: its sessions end; created again under the same name, it is another
    # stream, which the old tokens do not open.
    arn = kv.describe_stream(StreamName=STREAM)["StreamInfo"]["StreamARN"]
    kv.delete_stream(StreamARN=arn)
    expect_refusal(url, 404, "ResourceNotFoundException")
    kv.create_stream(StreamName=STREAM, DataRetentionInHours=1)
    expect_refusal(url, 401, "NotAuthorizedException", "another stream")
    print("tokens: altered, foreign claims, missing, unknown fragment, deleted and recreated stream")


def video_only(am):
    expected = json.loads(os.environ["KVS_EXPECTED"])
    start = expected[0]["producerTimestampMs"] // 1000
    end = math.ceil(expected[-1]["producerTimestampMs"] / 1000) + 1
    request = dict(PlaybackMode="ON_DEMAND", HLSFragmentSelector=selector(start, end))
    url = session_url(am, **request)
    master, video, audio = variants(url)
    check_master(master, audio=False)
    assert audio is None
    _, entries, _ = parse_media(text(video))
    # The session may still be storing fragments: those stored when the test looked come first.
    assert [e[0] for e in entries][:len(expected)] == [f["fragmentNumber"] for f in expected], entries
    expect_refusal(video.replace("TrackNumber=1", "TrackNumber=2"), 404, "ResourceNotFoundException")
    info = probe(session_url(am, **request))
    assert [s["codec_name"] for s in info["streams"]] == ["h264"], info
    decode(session_url(am, **request))
    dash_request = dict(PlaybackMode="ON_DEMAND", DASHFragmentSelector=selector(start, end))
    _, sets = manifest(dash_url(am, **dash_request))
    assert [s[0] for s in sets] == ["video"], sets
    info = probe(dash_url(am, **dash_request))
    assert [s["codec_name"] for s in info["streams"]] == ["h264"], info
    decode(dash_url(am, **dash_request))
    print("video only: no audio rendition (HLS) or adaptation set (DASH), ffprobe sees h264 alone, "
          "ffmpeg decodes silently")


def main():
    kv = client("kinesisvideo", ENDPOINT)
    endpoint = kv.get_data_endpoint(StreamName=STREAM, APIName="GET_HLS_STREAMING_SESSION_URL")["DataEndpoint"]
    am = client("kinesis-video-archived-media", endpoint)
    if PHASE == "live":
        live(am)
    elif PHASE == "on_demand":
        on_demand(am, kv)
    elif PHASE == "video_only":
        video_only(am)
    else:
        raise AssertionError(f"unknown phase {PHASE}")
    print(f"hls {PHASE}: all checks passed")


if __name__ == "__main__":
    main()
