"""boto3 and the AWS CLI against a running kvs-emulator.

Run by tests/official_aws_clients.rs, which starts the emulator and passes:
KVS_ENDPOINT, KVS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE.
Any failed check raises, so the process exits non-zero.
"""

import json
import os
import subprocess
import sys

import boto3
import botocore.exceptions

ENDPOINT = os.environ["KVS_ENDPOINT"]
REGION = os.environ["KVS_REGION"]
CA = os.environ["AWS_CA_BUNDLE"]
KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]


def client(service, endpoint, secret=SECRET):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=secret,
        verify=CA,
    )


def expect_error(code, call, status=None):
    try:
        call()
    except botocore.exceptions.ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err.response}"
        if status is not None:
            got_status = err.response["ResponseMetadata"]["HTTPStatusCode"]
            assert got_status == status, f"expected HTTP {status}, got {got_status}"
        return err
    raise AssertionError(f"expected {code}, the call succeeded")


def aws(*args, secret=SECRET, endpoint=ENDPOINT):
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY=secret)
    return subprocess.run(
        ["aws", *args, "--endpoint-url", endpoint, "--region", REGION, "--ca-bundle", CA, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def main():
    kv = client("kinesisvideo", ENDPOINT)
    channel_arn = kv.create_signaling_channel(ChannelName="py-cam")["ChannelARN"]
    stream_arn = kv.create_stream(StreamName="py-stream", DataRetentionInHours=24)["StreamARN"]
    kv.update_media_storage_configuration(
        ChannelARN=channel_arn,
        MediaStorageConfiguration={"StreamARN": stream_arn, "Status": "ENABLED"},
    )
    described = kv.describe_media_storage_configuration(ChannelARN=channel_arn)
    assert described["MediaStorageConfiguration"] == {"StreamARN": stream_arn, "Status": "ENABLED"}, described

    endpoints = kv.get_signaling_channel_endpoint(
        ChannelARN=channel_arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS", "WEBRTC"], "Role": "MASTER"},
    )["ResourceEndpointList"]
    by_protocol = {e["Protocol"]: e["ResourceEndpoint"] for e in endpoints}
    assert set(by_protocol) == {"WSS", "HTTPS", "WEBRTC"}, endpoints

    storage = client("kinesis-video-webrtc-storage", by_protocol["WEBRTC"])
    joined = storage.join_storage_session(channelArn=channel_arn)
    assert joined["ResponseMetadata"]["HTTPStatusCode"] == 200, joined

    signaling = client("kinesis-video-signaling", by_protocol["HTTPS"])
    ice = signaling.get_ice_server_config(ChannelARN=channel_arn, Service="TURN")["IceServerList"]
    assert ice and ice[0]["Ttl"] == 300 and ice[0]["Uris"], ice

    unknown = channel_arn.replace("channel/py-cam/", "channel/nope/")
    expect_error("ResourceNotFoundException", lambda: storage.join_storage_session(channelArn=unknown), 404)
    expect_error("ResourceNotFoundException", lambda: kv.describe_signaling_channel(ChannelName="nope"), 404)
    wrong_kv = client("kinesisvideo", ENDPOINT, secret=SECRET + "x")
    expect_error("AccessDeniedException", lambda: wrong_kv.describe_signaling_channel(ChannelName="py-cam"), 401)
    wrong_storage = client("kinesis-video-webrtc-storage", by_protocol["WEBRTC"], secret=SECRET + "x")
    expect_error("AccessDeniedException", lambda: wrong_storage.join_storage_session(channelArn=channel_arn), 403)

    # The AWS CLI: the same calls, the same errors.
    out = aws("kinesisvideo", "describe-signaling-channel", "--channel-name", "py-cam")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ChannelInfo"]["ChannelARN"] == channel_arn
    cli_channel = aws("kinesisvideo", "create-signaling-channel", "--channel-name", "cli-cam")
    assert cli_channel.returncode == 0, cli_channel.stderr
    out = aws("kinesis-video-webrtc-storage", "join-storage-session", "--channel-arn", channel_arn, endpoint=by_protocol["WEBRTC"])
    assert out.returncode == 0, out.stderr
    out = aws("kinesis-video-webrtc-storage", "join-storage-session", "--channel-arn", unknown, endpoint=by_protocol["WEBRTC"])
    assert out.returncode != 0 and "ResourceNotFoundException" in out.stderr, out.stderr
    out = aws("kinesisvideo", "describe-signaling-channel", "--channel-name", "py-cam", secret=SECRET + "x")
    assert out.returncode != 0 and "AccessDeniedException" in out.stderr, out.stderr
    out = aws("kinesis-video-webrtc-storage", "join-storage-session", "--channel-arn", channel_arn, endpoint=by_protocol["WEBRTC"], secret=SECRET + "x")
    assert out.returncode != 0 and "AccessDeniedException" in out.stderr, out.stderr

    print("official-clients: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"official-clients: FAILED: {err}", file=sys.stderr)
        sys.exit(1)
