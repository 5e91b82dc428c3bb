"""An independent client of the emulator's IoT credentials endpoint: curl presents the device
certificate (mutual TLS) and gets temporary credentials, which boto3 then uses for
DescribeSignalingChannel, and which the emulator refuses once a byte of the session token is
changed.

Run by tests/iot_credentials.rs, which starts the emulator, issues the device certificate and
passes: KVS_ENDPOINT, KVS_REGION, AWS_CA_BUNDLE, IOT_ENDPOINT (host:port), IOT_CERT, IOT_KEY,
IOT_THING, IOT_ROLE_ALIAS, CHANNEL_ARN. No access key is in the environment. Any failed check
raises, so the process exits non-zero.
"""

import json
import os
import subprocess

import boto3
import botocore.exceptions

ENV = os.environ
assert "AWS_ACCESS_KEY_ID" not in ENV, "no access key may come from the environment"

url = f"https://{ENV['IOT_ENDPOINT']}/role-aliases/{ENV['IOT_ROLE_ALIAS']}/credentials"
curl = subprocess.run(
    [
        "curl", "--silent", "--show-error", "--fail-with-body", "--max-time", "20",
        "--cert", ENV["IOT_CERT"], "--key", ENV["IOT_KEY"], "--cacert", ENV["AWS_CA_BUNDLE"],
        "-H", f"x-amzn-iot-thingname: {ENV['IOT_THING']}",
        url,
    ],
    capture_output=True, text=True, check=False,
)
assert curl.returncode == 0, f"curl failed ({curl.returncode}): {curl.stdout} {curl.stderr}"
credentials = json.loads(curl.stdout)["credentials"]
assert credentials["accessKeyId"].startswith("ASIA"), credentials["accessKeyId"]
assert credentials["expiration"].endswith("Z"), credentials["expiration"]


def kinesisvideo(token):
    return boto3.client(
        "kinesisvideo",
        endpoint_url=ENV["KVS_ENDPOINT"],
        region_name=ENV["KVS_REGION"],
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=token,
        verify=ENV["AWS_CA_BUNDLE"],
    )


info = kinesisvideo(credentials["sessionToken"]).describe_signaling_channel(
    ChannelName=ENV["IOT_THING"]
)["ChannelInfo"]
assert info["ChannelARN"] == ENV["CHANNEL_ARN"], info

token = credentials["sessionToken"]
tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
try:
    kinesisvideo(tampered).describe_signaling_channel(ChannelName=ENV["IOT_THING"])
    raise AssertionError("a tampered session token was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] in (401, 403), e.response

# A certificate-less request is refused at HTTP level with the service's message.
bare = subprocess.run(
    ["curl", "--silent", "--max-time", "20", "--cacert", ENV["AWS_CA_BUNDLE"],
     "-o", "/dev/null", "-w", "%{http_code}", url],
    capture_output=True, text=True, check=False,
)
assert bare.stdout == "403", f"without a certificate: {bare.stdout} {bare.stderr}"

print("iot-curl-boto3: all checks passed")
