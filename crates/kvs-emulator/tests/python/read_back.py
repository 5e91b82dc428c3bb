"""boto3 reads back a stream the emulator stored, as a user would: GetDataEndpoint, then
kinesis-video-archived-media ListFragments and GetMediaForFragmentList against the endpoints it
returned; ffprobe and ffmpeg read the media.

Run by tests/stream_store.rs after an ingestion, with KVS_ENDPOINT, KVS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE, KVS_STREAM and KVS_EXPECTED (the
fragments the inspection API lists, JSON). Any failed check raises: the process exits non-zero.
"""

import json
import os
import subprocess
import tempfile

import botocore.exceptions

from emulator_clients import client

ENDPOINT = os.environ["KVS_ENDPOINT"]
STREAM = os.environ["KVS_STREAM"]
EXPECTED = json.loads(os.environ["KVS_EXPECTED"])


def expect_error(code, call):
    try:
        call()
    except botocore.exceptions.ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err.response}"
        return err
    raise AssertionError(f"expected {code}, the call succeeded")


def ms(ts):
    return round(ts.timestamp() * 1000)


def vint(data, at):
    """An EBML size at `at`: (value, length)."""
    first = data[at]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    value = first & (0xFF >> length)
    for b in data[at + 1:at + length]:
        value = (value << 8) | b
    return value, length


def documents(payload):
    """Split a Matroska stream into its documents (EBML header + Segment each)."""
    docs, at = [], 0
    while at < len(payload):
        start = at
        for _ in range(2):  # the EBML header, then the Segment
            at += 4  # both IDs are 4 bytes
            size, length = vint(payload, at)
            at += length + size
        docs.append(payload[start:at])
    assert at == len(payload), "the stream ends at a document's end"
    return docs


def simple_tags(doc):
    """The SimpleTag name/value pairs of a document's Tags."""
    tags, at = {}, 0
    while True:
        at = doc.find(b"\x45\xa3", at)
        if at < 0:
            return tags
        size, length = vint(doc, at + 2)
        name = doc[at + 2 + length:at + 2 + length + size]
        vat = at + 2 + length + size
        if doc[vat:vat + 2] == b"\x44\x87":
            vsize, vlength = vint(doc, vat + 2)
            tags[name.decode("latin-1")] = doc[vat + 2 + vlength:vat + 2 + vlength + vsize].decode("latin-1")
        at = vat


def check_media(doc, path):
    with open(path, "wb") as f:
        f.write(doc)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.split() == ["h264", "aac"], probe.stdout
    assert probe.stderr == "", probe.stderr
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], capture_output=True, text=True)
    assert decode.returncode == 0 and decode.stderr == "", decode.stderr


def main():
    kv = client("kinesisvideo", ENDPOINT)
    endpoint = kv.get_data_endpoint(StreamName=STREAM, APIName="LIST_FRAGMENTS")["DataEndpoint"]
    am = client("kinesis-video-archived-media", endpoint)

    # Every fragment, one page at a time, through NextToken.
    got, token = [], None
    while True:
        args = {"StreamName": STREAM, "MaxResults": 1}
        if token:
            args["NextToken"] = token
        page = am.list_fragments(**args)
        got += page["Fragments"]
        token = page.get("NextToken")
        if not token:
            break
    got.sort(key=lambda f: int(f["FragmentNumber"]))
    assert [f["FragmentNumber"] for f in got] == [e["fragmentNumber"] for e in EXPECTED], got
    for f, e in zip(got, EXPECTED):
        assert ms(f["ProducerTimestamp"]) == e["producerTimestampMs"], (f, e)
        assert ms(f["ServerTimestamp"]) == e["serverTimestampMs"], (f, e)
        assert f["FragmentLengthInMilliseconds"] == e["fragmentLengthMs"], (f, e)
        assert f["FragmentSizeInBytes"] == e["fragmentSizeBytes"], (f, e)

    # A server-timestamp range of one second around the second fragment's start. botocore
    # sends timestamps in whole seconds (as it does to the service), so the range is
    # [floor(t), floor(t) + 1 s], ends included.
    start = int(got[1]["ServerTimestamp"].timestamp())
    ranged = am.list_fragments(
        StreamName=STREAM,
        FragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": start, "EndTimestamp": start + 1},
        },
    )["Fragments"]
    inside = [f["FragmentNumber"] for f in got if start * 1000 <= ms(f["ServerTimestamp"]) <= start * 1000 + 1000]
    assert got[1]["FragmentNumber"] in inside and len(inside) < len(got), inside
    assert sorted(f["FragmentNumber"] for f in ranged) == inside, (ranged, inside)
    # By producer timestamp, everything from the first fragment on, by the ARN.
    arn = kv.describe_stream(StreamName=STREAM)["StreamInfo"]["StreamARN"]
    by_producer = am.list_fragments(
        StreamARN=arn,
        FragmentSelector={
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {
                "StartTimestamp": int(got[0]["ProducerTimestamp"].timestamp()),
                "EndTimestamp": int(got[-1]["ProducerTimestamp"].timestamp()) + 1,
            },
        },
    )["Fragments"]
    assert len(by_producer) == len(got), by_producer

    # Bad input: a clear error each.
    expect_error("InvalidArgumentException", lambda: am.list_fragments(
        StreamName=STREAM,
        FragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": got[-1]["ServerTimestamp"], "EndTimestamp": got[0]["ServerTimestamp"]},
        },
    ))
    expect_error("InvalidArgumentException", lambda: am.list_fragments(StreamName=STREAM, MaxResults=1001))
    expect_error("InvalidArgumentException", lambda: am.list_fragments(StreamName=STREAM, NextToken="not-a-token"))
    expect_error("ResourceNotFoundException", lambda: am.list_fragments(StreamName="no-such-stream"))
    expect_error("ResourceNotFoundException", lambda: kv.get_data_endpoint(StreamName="no-such-stream", APIName="GET_MEDIA"))
    # A stream that never had media lists nothing.
    kv.create_stream(StreamName="read-back-empty", DataRetentionInHours=1)
    assert am.list_fragments(StreamName="read-back-empty")["Fragments"] == []

    # GetMediaForFragmentList, through its own GetDataEndpoint: every fragment, newest first,
    # each its own tagged Matroska document that ffprobe and ffmpeg read.
    media_endpoint = kv.get_data_endpoint(StreamName=STREAM, APIName="GET_MEDIA_FOR_FRAGMENT_LIST")["DataEndpoint"]
    media_client = client("kinesis-video-archived-media", media_endpoint)
    wanted = [f["FragmentNumber"] for f in reversed(got)]
    answer = media_client.get_media_for_fragment_list(StreamName=STREAM, Fragments=wanted)
    assert answer["ContentType"] == "video/webm", answer["ContentType"]
    docs = documents(answer["Payload"].read())
    assert len(docs) == len(wanted), len(docs)
    by_number = {e["fragmentNumber"]: e for e in EXPECTED}
    with tempfile.TemporaryDirectory() as tmp:
        for number, doc in zip(wanted, docs):
            tags = simple_tags(doc)
            e = by_number[number]
            assert tags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] == number, tags
            assert round(float(tags["AWS_KINESISVIDEO_SERVER_TIMESTAMP"]) * 1000) == e["serverTimestampMs"], tags
            assert round(float(tags["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"]) * 1000) == e["producerTimestampMs"], tags
            check_media(doc, os.path.join(tmp, f"{number}.mkv"))
    expect_error("ResourceNotFoundException", lambda: media_client.get_media_for_fragment_list(
        StreamName=STREAM, Fragments=[wanted[0], "12345"]))

    print("read-back: all checks passed")


if __name__ == "__main__":
    main()
