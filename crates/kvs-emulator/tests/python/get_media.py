"""boto3 reads a live stream with kinesis-video-media GetMedia, as a user would: GetDataEndpoint
(APIName GET_MEDIA), then get_media against the endpoint it returned, reading the chunked
Matroska body document by document as it arrives; ffprobe reads the media.

Run by tests/get_media.rs with KVS_ENDPOINT, KVS_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE, KVS_STREAM and KVS_PHASE:
- `live`: while a device ingests the looping sample clip: NOW delivers each new fragment
  (latency printed), a continuation token resumes without gap or duplicate, EARLIEST starts
  with the oldest stored fragment and counts up, ffprobe sees h264 + aac;
- `refusals`: bad input gets its error each, and a stream's fourth open response is refused;
- `rate`: on a fresh emulator with the default limits, the sixth call in a quick row on one
  stream is ClientLimitExceeded;
- `ended`: after the ingestion ended: EARLIEST delivers every stored fragment, then the body
  ends on its own once no fragment came for KVS_IDLE_MS; a body waiting for more ends as soon
  as the stream is deleted.
Any failed check raises: the process exits non-zero.
"""

import os
import subprocess
import tempfile
import time

import botocore.config
import botocore.exceptions

import emulator_clients

ENDPOINT = os.environ["KVS_ENDPOINT"]
STREAM = os.environ["KVS_STREAM"]
PHASE = os.environ["KVS_PHASE"]
IDLE_MS = int(os.environ.get("KVS_IDLE_MS", "0"))


def client(service, endpoint):
    # A bounded wait for each read: a body that stalls fails the test.
    return emulator_clients.client(
        service, endpoint, botocore.config.Config(read_timeout=15, retries={"max_attempts": 1})
    )


def expect_error(code, call):
    try:
        call()
    except botocore.exceptions.ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err.response}"
        return err
    raise AssertionError(f"expected {code}, the call succeeded")


def vint_length(first):
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    assert length <= 8, f"bad EBML size byte {first:#x}"
    return length


EBML = b"\x1a\x45\xdf\xa3"
SEGMENT = b"\x18\x53\x80\x67"
CLUSTER = b"\x1f\x43\xb6\x75"
SIMPLE_BLOCK = b"\xa3"


class Body:
    """A GetMedia body read element by element, with exact reads, so that each element is
    seen as soon as its last byte arrived."""

    def __init__(self, payload):
        self.payload = payload
        self.buf = b""

    def read(self, n):
        """Exactly n bytes, or None at the body's end (never inside an element)."""
        while len(self.buf) < n:
            chunk = self.payload.read(n - len(self.buf))
            if not chunk:
                assert not self.buf, "the body ended inside an element"
                return None
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def unread(self, data):
        self.buf = data + self.buf

    def head(self):
        """The next element's (ID, size or None when unknown, raw head bytes); None at the end."""
        first = self.read(1)
        if first is None:
            return None
        element_id = first + (self.read(vint_length(first[0]) - 1) or b"")
        size_first = self.read(1)
        length = vint_length(size_first[0])
        size_bytes = size_first + (self.read(length - 1) or b"")
        size = size_bytes[0] & (0xFF >> length)
        for b in size_bytes[1:]:
            size = (size << 8) | b
        unknown = size == (1 << (7 * length)) - 1
        return element_id, None if unknown else size, element_id + size_bytes

    def close(self):
        self.payload.close()


def next_document(body, blocks=None):
    """The next Matroska document (EBML header + Segment) of a GetMedia body; None at its end.
    A stored fragment has sizes; one streamed while it is assembled has an unknown-size Segment
    and Cluster, and ends where the next document starts (or the body ends). Each SimpleBlock
    of an unknown-size Cluster is appended to `blocks` with the time it was read."""
    head = body.head()
    if head is None:
        return None
    element_id, size, raw = head
    assert element_id == EBML, element_id
    doc = raw + body.read(size)
    element_id, size, raw = body.head()
    assert element_id == SEGMENT, element_id
    doc += raw
    if size is not None:
        return doc + body.read(size)
    while True:
        head = body.head()
        if head is None:
            return doc
        element_id, size, raw = head
        if element_id == EBML:
            body.unread(raw)
            return doc
        doc += raw
        if element_id == CLUSTER and size is None:
            while True:
                head = body.head()
                if head is None:
                    return doc
                child, child_size, child_raw = head
                if len(child) == 4:  # a level-1 element (or the next document) ends it
                    body.unread(child_raw)
                    break
                payload = body.read(child_size)
                doc += child_raw + payload
                if child == SIMPLE_BLOCK and blocks is not None:
                    blocks.append((time.time(), payload))
            continue
        doc += body.read(size)


def simple_tags(doc):
    """The SimpleTag name/value pairs of a document's Tags."""
    tags, at = {}, 0
    while True:
        at = doc.find(b"\x45\xa3", at)
        if at < 0:
            return tags
        size, length = doc[at + 2] & 0x7F, 1
        if not doc[at + 2] & 0x80:
            length = vint_length(doc[at + 2])
            size = doc[at + 2] & (0xFF >> length)
            for b in doc[at + 3:at + 2 + length]:
                size = (size << 8) | b
        name = doc[at + 2 + length:at + 2 + length + size]
        vat = at + 2 + length + size
        if doc[vat:vat + 2] == b"\x44\x87":
            vlength = vint_length(doc[vat + 2])
            vsize = doc[vat + 2] & (0xFF >> vlength)
            for b in doc[vat + 3:vat + 2 + vlength]:
                vsize = (vsize << 8) | b
            tags[name.decode("latin-1")] = doc[vat + 2 + vlength:vat + 2 + vlength + vsize].decode("latin-1")
        at = vat


def read_fragments(media, selector, count):
    """GetMedia with `selector`: the first `count` documents, each as (tags, doc, time read,
    blocks read as they arrived)."""
    answer = media.get_media(StreamName=STREAM, StartSelector=selector)
    assert answer["ContentType"] == "video/webm", answer["ContentType"]
    body = Body(answer["Payload"])
    got = []
    while len(got) < count:
        blocks = []
        doc = next_document(body, blocks)
        assert doc is not None, f"the body ended after {len(got)} fragments"
        got.append((simple_tags(doc), doc, time.time(), blocks))
    body.close()
    return got


def numbers(got):
    return [int(tags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"]) for tags, *_ in got]


def check_media(doc, path):
    with open(path, "wb") as f:
        f.write(doc)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.split() == ["h264", "aac"], probe.stdout
    assert probe.stderr == "", probe.stderr


def live(kv, media):
    am_endpoint = kv.get_data_endpoint(StreamName=STREAM, APIName="LIST_FRAGMENTS")["DataEndpoint"]
    am = client("kinesis-video-archived-media", am_endpoint)

    # NOW: from the fragment being assembled on, each frame as it arrives (the fragment's
    # document is streamed while the storage session receives it, as the service does).
    stored_before = max(int(f["FragmentNumber"]) for f in am.list_fragments(StreamName=STREAM)["Fragments"])
    asked_at = time.time()
    now = read_fragments(media, {"StartSelectorType": "NOW"}, 3)
    got = numbers(now)
    assert got[0] > stored_before and got == sorted(set(got)), (stored_before, got)
    latencies = []
    for tags, _, _, blocks in now:
        assert set(tags) >= {
            "AWS_KINESISVIDEO_FRAGMENT_NUMBER", "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
            "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", "AWS_KINESISVIDEO_CONTINUATION_TOKEN",
            "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"}, tags
        assert blocks, f"fragment {tags['AWS_KINESISVIDEO_FRAGMENT_NUMBER']} was not streamed live"
        # The storage peer stamps a fragment with the arrival of its keyframe; the producer
        # paces frames in real time, so a frame arrived its offset after that.
        server = float(tags["AWS_KINESISVIDEO_SERVER_TIMESTAMP"])
        for read_at, block in blocks:
            track = block[0] & 0x7F
            offset = int.from_bytes(block[1:3], "big", signed=True) / 1000
            arrived = server + offset
            if track == 1 and arrived >= asked_at:  # video ingested during the call
                latencies.append(read_at - arrived)
    latencies.sort()
    worst = latencies[-1]
    print(f"get-media NOW: {len(latencies)} video frames ingested during the call, read "
          f"{latencies[len(latencies) // 2] * 1000:.0f} ms (median), "
          f"{latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms (95th percentile), "
          f"{worst * 1000:.0f} ms (worst) after they reached the storage peer")
    assert len(latencies) >= 40, latencies
    assert worst < 1.0, f"a frame reached the reader {worst:.3f} s after the storage peer"

    # The continuation token of the second fragment resumes with the third (stored by now,
    # so sent whole): no gap, no duplicate, and on into live fragments.
    token = now[1][0]["AWS_KINESISVIDEO_CONTINUATION_TOKEN"]
    resumed = read_fragments(media, {"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": token}, 2)
    assert numbers(resumed)[0] == got[2], (got, numbers(resumed))
    assert numbers(resumed)[1] > got[2], (got, numbers(resumed))
    same = ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP")
    assert [resumed[0][0][t] for t in same] == [now[2][0][t] for t in same], (resumed[0][0], now[2][0])
    with tempfile.TemporaryDirectory() as tmp:
        # The live document and the stored one both read as h264 + aac.
        check_media(now[2][1], os.path.join(tmp, "live.mkv"))
        check_media(resumed[0][1], os.path.join(tmp, "stored.mkv"))

    # FRAGMENT_NUMBER starts after the one named.
    after = read_fragments(media, {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": str(got[0])}, 1)
    assert numbers(after) == [got[1]], (got, numbers(after))

    # EARLIEST: every stored fragment from the oldest, numbers counting up, h264 + aac each.
    listed = sorted(int(f["FragmentNumber"]) for f in am.list_fragments(StreamName=STREAM)["Fragments"])
    earliest = read_fragments(media, {"StartSelectorType": "EARLIEST"}, len(listed))
    assert numbers(earliest) == listed, (numbers(earliest), listed)
    with tempfile.TemporaryDirectory() as tmp:
        for tags, doc, *_ in earliest[:3]:
            check_media(doc, os.path.join(tmp, tags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] + ".mkv"))


def refusals(kv, media):
    """Bad input, a clear error each; at most 3 open responses per stream."""
    expect_error("InvalidArgumentException", lambda: media.get_media(
        StreamName=STREAM, StartSelector={"StartSelectorType": "LATEST"}))
    expect_error("InvalidArgumentException", lambda: media.get_media(
        StreamName=STREAM, StartSelector={"StartSelectorType": "FRAGMENT_NUMBER"}))
    expect_error("InvalidArgumentException", lambda: media.get_media(
        StreamName=STREAM, StartSelector={"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": "not-a-token"}))
    expect_error("InvalidArgumentException", lambda: media.get_media(
        StreamName=STREAM, StartSelector={"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "12345"}))
    expect_error("ResourceNotFoundException", lambda: media.get_media(
        StreamName="no-such-stream", StartSelector={"StartSelectorType": "NOW"}))
    kv.create_stream(StreamName="get-media-empty", DataRetentionInHours=1)
    expect_error("ResourceNotFoundException", lambda: media.get_media(
        StreamName="get-media-empty", StartSelector={"StartSelectorType": "EARLIEST"}))

    # At most 3 open responses per stream: the fourth is refused, and a slot frees when a
    # reader closes.
    open_ones = [media.get_media(StreamName=STREAM, StartSelector={"StartSelectorType": "NOW"}) for _ in range(3)]
    expect_error("ConnectionLimitExceededException", lambda: media.get_media(
        StreamName=STREAM, StartSelector={"StartSelectorType": "NOW"}))
    for answer in open_ones:
        answer["Payload"].close()
    # The emulator sees a reader gone when its connection closes, a moment after close()
    # returns here: the slot must be free within 2 s.
    deadline = time.monotonic() + 2.0
    while True:
        try:
            answer = media.get_media(StreamName=STREAM, StartSelector={"StartSelectorType": "EARLIEST"})
            break
        except botocore.exceptions.ClientError as e:
            code = e.response["Error"]["Code"]
            assert code == "ConnectionLimitExceededException", code
            assert time.monotonic() < deadline, "no slot freed within 2 s of the readers closing"
            time.sleep(0.02)
    again = Body(answer["Payload"])
    assert next_document(again) is not None
    again.close()


def ended(kv, media):
    payload = Body(media.get_media(StreamName=STREAM, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"])
    got, last_at = [], None
    while True:
        doc = next_document(payload)
        if doc is None:
            break
        got.append(int(simple_tags(doc)["AWS_KINESISVIDEO_FRAGMENT_NUMBER"]))
        last_at = time.time()
    quiet = time.time() - last_at
    print(f"get-media ended: {len(got)} fragments, then the body ended {quiet * 1000:.0f} ms later")
    assert len(got) >= 3 and got == sorted(set(got)), got
    assert IDLE_MS / 1000 - 0.2 <= quiet < IDLE_MS / 1000 + 2.0, quiet

    # The stream is deleted while a reader waits for more: its body ends at once (well before
    # the idle timeout), after whole documents only; the stream is then unknown.
    payload = Body(media.get_media(StreamName=STREAM, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"])
    for _ in got:
        assert next_document(payload) is not None
    arn = kv.describe_stream(StreamName=STREAM)["StreamInfo"]["StreamARN"]
    kv.delete_stream(StreamARN=arn)
    deleted_at = time.time()
    assert next_document(payload) is None, "nothing after the deletion"
    ended_after = time.time() - deleted_at
    print(f"get-media ended: the body ended {ended_after * 1000:.0f} ms after DeleteStream")
    assert ended_after < IDLE_MS / 1000 / 2, ended_after
    expect_error("ResourceNotFoundException", lambda: media.get_media(
        StreamName=STREAM, StartSelector={"StartSelectorType": "NOW"}))


def rate(kv, media):
    """5 calls per second per stream: calls in a quick row are refused from the sixth on (a
    refused call uses nothing up). The stream has no media, so admitted calls are
    ResourceNotFound."""
    codes = []
    for _ in range(50):
        try:
            media.get_media(StreamName=STREAM, StartSelector={"StartSelectorType": "NOW"})
            codes.append("200")
        except botocore.exceptions.ClientError as err:
            codes.append(err.response["Error"]["Code"])
        if codes[-1] == "ClientLimitExceededException":
            break
    print(f"get-media rate: {codes}")
    assert codes[-1] == "ClientLimitExceededException", codes
    assert len(codes) >= 6 and set(codes[:5]) == {"ResourceNotFoundException"}, codes
    # Another stream has its own budget.
    expect_error("ResourceNotFoundException", lambda: media.get_media(
        StreamName="no-such-stream", StartSelector={"StartSelectorType": "NOW"}))


def main():
    kv = client("kinesisvideo", ENDPOINT)
    if PHASE == "rate":
        kv.create_stream(StreamName=STREAM, DataRetentionInHours=1)
    endpoint = kv.get_data_endpoint(StreamName=STREAM, APIName="GET_MEDIA")["DataEndpoint"]
    media = client("kinesis-video-media", endpoint)
    {"live": live, "refusals": refusals, "ended": ended, "rate": rate}[PHASE](kv, media)
    print(f"get-media {PHASE}: all checks passed")


if __name__ == "__main__":
    main()
