"""boto3 reads back a stream the emulator stored, as a user would: GetDataEndpoint, then
kinesis-video-archived-media ListFragments against the endpoint it returned.

Run by tests/stream_store.rs after an ingestion, with KVS_ENDPOINT, KVS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE, KVS_STREAM and KVS_EXPECTED (the
fragments the inspection API lists, JSON). Any failed check raises: the process exits non-zero.
"""

import json
import os

import boto3
import botocore.exceptions

ENDPOINT = os.environ["KVS_ENDPOINT"]
REGION = os.environ["KVS_REGION"]
CA = os.environ["AWS_CA_BUNDLE"]
STREAM = os.environ["KVS_STREAM"]
EXPECTED = json.loads(os.environ["KVS_EXPECTED"])


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        verify=CA,
    )


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

    print("read-back: all checks passed")


if __name__ == "__main__":
    main()
