"""boto3 clients of the emulator, shared by the scripts here: the endpoint, region, key and
CA the Rust tests pass (KVS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE).
"""

import os

import boto3


def client(service, endpoint, config=None):
    """A boto3 client of `service` at `endpoint` that verifies the emulator's CA."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=os.environ["KVS_REGION"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        verify=os.environ["AWS_CA_BUNDLE"],
        config=config,
    )
