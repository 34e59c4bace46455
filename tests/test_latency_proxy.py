"""The benchmarks' latency proxy in replay mode (bench/latency_proxy.py --replay): a repeated request of
the same account is answered from the upstream's first answer, anything else goes upstream."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bench.latency_proxy import REWIND_PATH, LatencyProxy

pytestmark = [pytest.mark.server, pytest.mark.slow]

TRUST = '{"Version": "2012-10-17", "Statement": []}'


def iam(endpoint: str, access_key: str) -> Any:
    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key="secret",
    )


def role_seen(client: Any) -> str:
    try:
        return str(client.get_role(RoleName="replayed")["Role"]["RoleName"])
    except ClientError as error:
        return str(error.response["Error"]["Code"])


def test_a_repeated_request_of_the_same_account_is_answered_from_the_record(moto_server: str) -> None:
    upstream = iam(moto_server, "AKIDUPSTREAM")
    upstream.create_role(RoleName="replayed", AssumeRolePolicyDocument=TRUST)
    with LatencyProxy(moto_server, delay=0.0, replay=True) as proxy:
        first, second = iam(proxy.url, "AKIDFIRST"), iam(proxy.url, "AKIDSECOND")
        assert role_seen(first) == "replayed"
        upstream.delete_role(RoleName="replayed")
        assert role_seen(first) == "replayed"  # the record's answer: the upstream was not asked
        assert proxy.snapshot()["replayed"] == 1
        # Another signing key is another account's request: it goes upstream, and errors are not kept.
        assert role_seen(second) == "NoSuchEntity"
        assert role_seen(second) == "NoSuchEntity"
        assert proxy.snapshot()["replayed"] == 1


def test_without_replay_every_request_goes_upstream(moto_server: str) -> None:
    upstream = iam(moto_server, "AKIDUPSTREAM")
    upstream.create_role(RoleName="replayed", AssumeRolePolicyDocument=TRUST)
    with LatencyProxy(moto_server, delay=0.0) as proxy:
        client = iam(proxy.url, "AKIDFIRST")
        assert role_seen(client) == "replayed"
        upstream.delete_role(RoleName="replayed")
        assert role_seen(client) == "NoSuchEntity"
        assert proxy.snapshot()["replayed"] == 0


def test_a_replayed_assume_role_answer_expires_an_hour_from_now(moto_server: str) -> None:
    sts = {"endpoint_url": "", "region_name": "us-east-1"}
    with LatencyProxy(moto_server, delay=0.0, replay=True) as proxy:
        sts["endpoint_url"] = proxy.url
        client = boto3.client("sts", aws_access_key_id="AKIDFIRST", aws_secret_access_key="secret", **sts)
        asked = {"RoleArn": "arn:aws:iam::123456789012:role/any", "RoleSessionName": "session"}
        first = client.assume_role(**asked, DurationSeconds=900)["Credentials"]
        again = client.assume_role(**asked, DurationSeconds=900)["Credentials"]
        assert proxy.snapshot()["replayed"] == 1
    assert again["AccessKeyId"] == first["AccessKeyId"]  # the record's credentials...
    left = again["Expiration"] - datetime.now(UTC)
    assert timedelta(minutes=59) < left <= timedelta(hours=1)  # ...valid for an hour from the replay


def test_a_sequence_proxy_replays_each_requests_answers_in_the_order_they_came(moto_server: str) -> None:
    """--replay-sequence: a provisioning's read before and after its write get their own answers again,
    errors too, and a request past the record goes upstream, counted as missed."""
    with LatencyProxy(moto_server, delay=0.0, sequence=True) as proxy:
        client = iam(proxy.url, "AKIDSEQUENCE")
        assert role_seen(client) == "NoSuchEntity"  # recorded: an error is an answer too
        client.create_role(RoleName="replayed", AssumeRolePolicyDocument=TRUST)
        assert role_seen(client) == "replayed"
        assert proxy.snapshot()["replayed"] == 0
        proxy.rewind()
        # The role exists upstream now; the replay answers as the first pass heard it, in order.
        assert role_seen(client) == "NoSuchEntity"
        client.create_role(RoleName="replayed", AssumeRolePolicyDocument=TRUST)  # not EntityAlreadyExists
        assert role_seen(client) == "replayed"
        assert proxy.snapshot()["replayed"] == 3
        assert proxy.snapshot()["missed"] == 0
        assert role_seen(client) == "replayed"  # past the record: asked upstream
        assert proxy.snapshot()["missed"] == 1
        assert proxy.snapshot()["replayed"] == 3


def test_only_a_sequence_proxy_rewinds(moto_server: str) -> None:
    with LatencyProxy(moto_server, delay=0.0, replay=True) as proxy:
        with pytest.raises(ValueError):
            proxy.rewind()
        asked = urllib.request.Request(f"{proxy.url}{REWIND_PATH}", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(asked, timeout=10)
        assert refused.value.code == 400
