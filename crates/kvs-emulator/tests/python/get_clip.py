"""boto3 and the AWS CLI fetch a clip of a stream the emulator stored, as a user would:
GetDataEndpoint with GET_CLIP, then kinesis-video-archived-media GetClip against the endpoint it
returned; ffprobe and ffmpeg read the fragmented MP4. Bad input gets the documented errors.

Run by tests/stream_store.rs after an ingestion, with KVS_ENDPOINT, KVS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE, KVS_STREAM, KVS_EXPECTED (the fragments
the inspection API lists, JSON) and KVS_CLIP_DIR (where clip.mp4 and cli-clip.mp4 are left for
the Rust side's tone check). Any failed check raises: the process exits non-zero.
"""

import json
import math
import os
import subprocess

import botocore.exceptions

from emulator_clients import client

ENDPOINT = os.environ["KVS_ENDPOINT"]
REGION = os.environ["KVS_REGION"]
CA = os.environ["AWS_CA_BUNDLE"]
STREAM = os.environ["KVS_STREAM"]
EXPECTED = json.loads(os.environ["KVS_EXPECTED"])
OUT = os.environ["KVS_CLIP_DIR"]


def expect_error(code, call):
    try:
        call()
    except botocore.exceptions.ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err.response}"
        return err
    raise AssertionError(f"expected {code}, the call succeeded")


def selector(start, end, kind="PRODUCER_TIMESTAMP"):
    return {"FragmentSelectorType": kind, "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}}


def check_mp4(path):
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,duration:format=duration,format_name", "-of", "json", path],
        capture_output=True, text=True, check=True,
    )
    assert probe.stderr == "", probe.stderr
    info = json.loads(probe.stdout)
    codecs = [s["codec_name"] for s in info["streams"]]
    assert codecs == ["h264", "aac"], codecs
    assert "mp4" in info["format"]["format_name"], info["format"]
    total = sum(e["fragmentLengthMs"] for e in EXPECTED) / 1000
    duration = float(info["format"]["duration"])
    assert abs(duration - total) < 0.1, f"the clip lasts {duration} s, the fragments {total} s"
    for stream in info["streams"]:
        # Each track's own timescale: a wrong one stretches or shrinks that track.
        length = float(stream["duration"])
        assert abs(length - total) < 0.1, f"{stream['codec_name']} lasts {length} s, the fragments {total} s"
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], capture_output=True, text=True)
    assert decode.returncode == 0 and decode.stderr == "", decode.stderr
    # Every video frame decodes, and keyframes are sync samples: one per fragment.
    frames = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_packets", "-show_entries", "packet=flags", "-of", "csv=p=0", path],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    keys = [f for f in frames if f.startswith("K")]
    assert len(keys) == len(EXPECTED), f"ffprobe finds {len(keys)} keyframes for {len(EXPECTED)} fragments"
    # ffmpeg's parser finds keyframes by itself: the sync flags players seek by are read here.
    with open(path, "rb") as f:
        sync = sync_flags(f.read())
    assert sync == [[True] + [False] * (len(s) - 1) for s in sync], sync
    assert len(sync) == len(EXPECTED), f"{len(sync)} video runs for {len(EXPECTED)} fragments"


def boxes(data):
    at = 0
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        assert size >= 8 and at + size <= len(data), (at, size)
        yield data[at + 4:at + 8].decode("latin-1"), data[at + 8:at + size]
        at += size


def sync_flags(mp4):
    """Per moof, the video run's samples: whether each is a sync sample (trun sample flags)."""
    runs = []
    for kind, moof in boxes(mp4):
        if kind != "moof":
            continue
        for kind, traf in boxes(moof):
            if kind != "traf":
                continue
            parts = dict(boxes(traf))
            if int.from_bytes(parts["tfhd"][4:8], "big") != 1:
                continue
            trun = parts["trun"]
            flags = int.from_bytes(trun[1:4], "big")
            assert flags == 0x701, hex(flags)
            count = int.from_bytes(trun[4:8], "big")
            entries = trun[12:]
            runs.append([
                not int.from_bytes(entries[i * 12 + 8:i * 12 + 12], "big") & 0x00010000
                for i in range(count)
            ])
    return runs


def aws(*args, endpoint):
    return subprocess.run(
        ["aws", *args, "--endpoint-url", endpoint, "--region", REGION, "--ca-bundle", CA],
        capture_output=True, text=True, timeout=60,
    )


def main():
    kv = client("kinesisvideo", ENDPOINT)
    endpoint = kv.get_data_endpoint(StreamName=STREAM, APIName="GET_CLIP")["DataEndpoint"]
    am = client("kinesis-video-archived-media", endpoint)

    # botocore sends whole seconds: a range from the first fragment's second to one past the
    # last fragment's start holds them all.
    start = EXPECTED[0]["producerTimestampMs"] // 1000
    end = math.ceil(EXPECTED[-1]["producerTimestampMs"] / 1000) + 1
    clip = am.get_clip(StreamName=STREAM, ClipFragmentSelector=selector(start, end))
    assert clip["ContentType"] == "video/mp4", clip["ContentType"]
    body = clip["Payload"].read()
    assert body[4:8] == b"ftyp", body[:16]
    path = os.path.join(OUT, "clip.mp4")
    with open(path, "wb") as f:
        f.write(body)
    check_mp4(path)

    # The AWS CLI writes the same clip to its outfile.
    cli_path = os.path.join(OUT, "cli-clip.mp4")
    out = aws(
        "kinesis-video-archived-media", "get-clip", "--stream-name", STREAM,
        "--clip-fragment-selector", json.dumps(selector(start, end)), cli_path,
        endpoint=endpoint,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ContentType"] == "video/mp4", out.stdout
    with open(cli_path, "rb") as f:
        assert f.read() == body, "the CLI's clip is boto3's"

    # Server timestamps select too; one fragment alone is a clip of its own length.
    server_ms = EXPECTED[1]["serverTimestampMs"]
    one = am.get_clip(
        StreamName=STREAM,
        ClipFragmentSelector=selector(server_ms / 1000, server_ms / 1000, "SERVER_TIMESTAMP"),
    )["Payload"].read()
    assert 0 < len(one) < len(body), (len(one), len(body))

    # Bad input.
    err = expect_error("InvalidArgumentException", lambda: am.get_clip(
        StreamName=STREAM, ClipFragmentSelector=selector(end, start)))
    assert "before" in err.response["Error"]["Message"], err.response
    err = expect_error("ResourceNotFoundException", lambda: am.get_clip(
        StreamName=STREAM, ClipFragmentSelector=selector(1_000_000, 1_000_100)))
    assert "No fragments found" in err.response["Error"]["Message"], err.response
    expect_error("ResourceNotFoundException", lambda: am.get_clip(
        StreamName="no-such-stream", ClipFragmentSelector=selector(start, end)))
    kv.create_stream(StreamName="clip-empty-stream", DataRetentionInHours=1)
    err = expect_error("ResourceNotFoundException", lambda: am.get_clip(
        StreamName="clip-empty-stream", ClipFragmentSelector=selector(start, end)))
    assert "never received media" in err.response["Error"]["Message"], err.response
    out = aws(
        "kinesis-video-archived-media", "get-clip", "--stream-name", STREAM,
        "--clip-fragment-selector", json.dumps(selector(end, start)), os.path.join(OUT, "bad.mp4"),
        endpoint=endpoint,
    )
    assert out.returncode != 0 and "InvalidArgumentException" in out.stderr, (out.returncode, out.stderr)
    print("get-clip: all checks passed")


if __name__ == "__main__":
    main()
