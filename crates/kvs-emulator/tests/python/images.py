"""boto3 asks for still images of a stream the emulator stored, as a user would: GetDataEndpoint
with GET_IMAGES, then kinesis-video-archived-media GetImages against the endpoint it returned.
The images are left in KVS_IMAGES_DIR for the Rust side, which decodes them and compares them
with the frames ffmpeg extracts from the source clip.

Run by tests/images.rs after an ingestion, with KVS_ENDPOINT, KVS_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE, KVS_STREAM, KVS_EXPECTED (the fragments the inspection API
lists, JSON) and KVS_IMAGES_DIR. Each image is saved as <kind>-<producer ms>.<ext>, the
producer time of its sampled time (for server-timestamp samples, moved by its fragment's
server-producer offset). Any failed check raises: the process exits non-zero.
"""

import base64
import json
import os

import botocore.config
import botocore.exceptions

import emulator_clients

ENDPOINT = os.environ["KVS_ENDPOINT"]
STREAM = os.environ["KVS_STREAM"]
EXPECTED = json.loads(os.environ["KVS_EXPECTED"])
OUT = os.environ["KVS_IMAGES_DIR"]
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def client(service, endpoint, validate=True):
    # Validation off for the bad-input checks: the service, not botocore, must refuse them.
    return emulator_clients.client(
        service, endpoint, botocore.config.Config(parameter_validation=validate)
    )


def expect_error(code, call, words=""):
    try:
        call()
    except botocore.exceptions.ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err.response}"
        message = err.response["Error"]["Message"]
        assert words in message, message
        return message
    raise AssertionError(f"expected {code}, the call succeeded")


def ms(timestamp):
    return round(timestamp.timestamp() * 1000)


def all_images(media, **request):
    """Every image of a request, page by page; returns (images, pages)."""
    images, pages, token = [], 0, None
    while True:
        answer = media.get_images(**request, **({"NextToken": token} if token else {}))
        pages += 1
        images += answer["Images"]
        token = answer.get("NextToken")
        if token is None:
            return images, pages
        assert pages < 100, "paging does not end"


def save(kind, producer_ms, content, magic, ext):
    data = base64.b64decode(content)
    assert data.startswith(magic), f"{kind} at {producer_ms}: starts with {data[:8]!r}"
    with open(os.path.join(OUT, f"{kind}-{producer_ms}.{ext}"), "wb") as f:
        f.write(data)


def fragment_at(t, clock):
    for f in EXPECTED:
        start = f[clock]
        if start <= t < start + f["fragmentLengthMs"]:
            return f
    return None


def main():
    kvs = client("kinesisvideo", ENDPOINT)
    endpoint = kvs.get_data_endpoint(StreamName=STREAM, APIName="GET_IMAGES")["DataEndpoint"]
    media = client("kinesis-video-archived-media", endpoint)
    start = EXPECTED[0]["producerTimestampMs"]
    end = EXPECTED[-1]["producerTimestampMs"] + EXPECTED[-1]["fragmentLengthMs"]
    print(f"stream: {len(EXPECTED)} fragments, {(end - start) / 1000} s")

    # JPEG at the stream's own size every 500 ms, past the end by 2 s, in pages of 4.
    request = dict(
        StreamName=STREAM, ImageSelectorType="PRODUCER_TIMESTAMP", Format="JPEG",
        StartTimestamp=start / 1000, EndTimestamp=(end + 2000) / 1000, SamplingInterval=500,
    )
    images, pages = all_images(media, MaxResults=4, **request)
    times = [ms(i["TimeStamp"]) for i in images]
    assert times == list(range(start, end + 2001, 500)), times
    assert pages == -(-len(images) // 4), f"{pages} pages for {len(images)} images"
    whole, whole_pages = all_images(media, MaxResults=100, **request)
    assert [ms(i["TimeStamp"]) for i in whole] == times and whole_pages == -(-len(times) // 25)
    for image, t in zip(images, times):
        if t < end:
            assert "Error" not in image and image.get("ImageContent"), f"{t}: {image.get('Error')}"
            save("jpeg", t, image["ImageContent"], JPEG_MAGIC, "jpg")
        else:
            assert image.get("Error") == "NO_MEDIA" and "ImageContent" not in image, f"{t}: {image}"
    print(f"jpeg: {sum(t < end for t in times)} images, {sum(t >= end for t in times)} NO_MEDIA, {pages} pages of 4")

    # PNG on the server clock, 120 pixels high (the width keeps the aspect).
    server_start = EXPECTED[0]["serverTimestampMs"]
    server_end = EXPECTED[-1]["serverTimestampMs"] + EXPECTED[-1]["fragmentLengthMs"]
    pngs, _ = all_images(
        media, StreamName=STREAM, ImageSelectorType="SERVER_TIMESTAMP", Format="PNG",
        StartTimestamp=server_start / 1000, EndTimestamp=(server_end - 1) / 1000,
        SamplingInterval=1000, HeightPixels=120,
    )
    saved = 0
    for image in pngs:
        t = ms(image["TimeStamp"])
        fragment = fragment_at(t, "serverTimestampMs")
        if fragment is None:
            assert image.get("Error") == "NO_MEDIA", f"{t} is in no fragment: {image}"
            continue
        producer = t - fragment["serverTimestampMs"] + fragment["producerTimestampMs"]
        save("png", producer, image["ImageContent"], PNG_MAGIC, "png")
        saved += 1
    assert saved >= 3, f"{saved} PNG images"
    print(f"png: {saved} images")

    # Stretched to 100 x 50, JPEG quality 10 (smaller than at 80).
    small, _ = all_images(
        media, FormatConfig={"JPEGQuality": "10"}, WidthPixels=100, HeightPixels=50,
        **dict(request, EndTimestamp=(start + 1000) / 1000),
    )
    assert len(small) == 3 and all("ImageContent" in i for i in small), small
    for image in small:
        save("stretched", ms(image["TimeStamp"]), image["ImageContent"], JPEG_MAGIC, "jpg")
    low = len(base64.b64decode(small[0]["ImageContent"]))
    high = len(base64.b64decode(all_images(
        media, WidthPixels=100, HeightPixels=50, **dict(request, EndTimestamp=start / 1000)
    )[0][0]["ImageContent"]))
    assert low < high, f"quality 10: {low} bytes, 80: {high}"
    print(f"stretched: 3 images, quality 10 {low} bytes against {high} at 80")

    # Bad input, as the service refuses it (botocore's own checks off).
    loose = client("kinesis-video-archived-media", endpoint, validate=False)
    bad = dict(request, EndTimestamp=(start + 5000) / 1000)
    for change, code, words in [
        ({"EndTimestamp": (start + 300_001) / 1000}, "InvalidArgumentException", "300 s"),
        ({"SamplingInterval": 100}, "InvalidArgumentException", "at least 200 ms"),
        ({"WidthPixels": 3841, "HeightPixels": 100}, "InvalidArgumentException", "3840"),
        ({"HeightPixels": 2161}, "InvalidArgumentException", "2160"),
        ({"WidthPixels": 320}, "InvalidArgumentException", "WidthPixels needs HeightPixels"),
        ({"FormatConfig": {"JPEGQuality": "0"}}, "InvalidArgumentException", "JPEGQuality"),
        ({"Format": "GIF"}, "InvalidArgumentException", "JPEG, PNG"),
        ({"MaxResults": 101}, "InvalidArgumentException", "between 1 and 100"),
        ({"NextToken": "bm90IG91cnM"}, "InvalidArgumentException", "NextToken"),
        ({"StreamName": "no-such-stream"}, "ResourceNotFoundException", ""),
        ({"StartTimestamp": (start - 86_400_000) / 1000, "EndTimestamp": (start - 86_300_000) / 1000},
         "ResourceNotFoundException", "No fragments"),
    ]:
        expect_error(code, lambda: loose.get_images(**dict(bad, **change)), words)
    print("bad input: 11 refusals")
    print("images: all checks passed")


main()
