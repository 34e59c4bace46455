"""Assume the destination role and list the destination account's buckets.

The role ARN comes from the DESTINATION_ROLE_ARN environment variable. The answer is a JSON document;
credentials are never printed or returned.

AWS's own faults (throttling, 5xx, timeouts, resets) are retried by botocore's standard retry mode. A
call that still fails is answered with its stage, its error code (a botocore exception's class name
when AWS did not answer), its HTTP status and attempts when known, so that the auditor can tell a
denial, which is the lab's, from AWS's fault, which is not.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ROLE_ARN_VARIABLE = "DESTINATION_ROLE_ARN"
RETRIES = Config(retries={"mode": "standard"})


def _fail(stage: str, error: ClientError | BotoCoreError) -> dict[str, Any]:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        metadata = error.response.get("ResponseMetadata", {})
        return {
            "ok": False,
            "stage": stage,
            "error_code": str(details.get("Code", "")),
            "error": str(details.get("Message", ""))[:500],
            "http_status": metadata.get("HTTPStatusCode"),
            "attempts": metadata.get("RetryAttempts", 0) + 1,
        }
    # No answer from AWS (a reset, a timeout): the exception's class says which.
    return {"ok": False, "stage": stage, "error_code": type(error).__name__, "error": str(error)[:500]}


def _retries(*responses: dict[str, Any]) -> int:
    return sum(response.get("ResponseMetadata", {}).get("RetryAttempts", 0) for response in responses)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    role_arn = os.environ.get(ROLE_ARN_VARIABLE, "")
    if not role_arn:
        return {
            "ok": False,
            "stage": "configuration",
            "error_code": "",
            "error": f"{ROLE_ARN_VARIABLE} is not set",
        }
    try:
        assumed = boto3.client("sts", config=RETRIES).assume_role(
            RoleArn=role_arn, RoleSessionName=f"{uuid.uuid4().hex[:5]}-s3"
        )
    except (ClientError, BotoCoreError) as error:
        return _fail("assume_role", error)
    credentials = assumed["Credentials"]
    s3 = boto3.client(
        "s3",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=RETRIES,
    )
    try:
        listing = s3.list_buckets()
    except (ClientError, BotoCoreError) as error:
        return _fail("list_buckets", error)
    assumed_arn = assumed["AssumedRoleUser"]["Arn"]
    answer = {
        "ok": True,
        "assumed_role_arn": assumed_arn,
        "destination_account": assumed_arn.split(":")[4],
        "buckets": sorted(bucket["Name"] for bucket in listing.get("Buckets", [])),
        "retries": _retries(assumed, listing),
    }
    print({key: answer[key] for key in ("assumed_role_arn", "destination_account")})
    return answer
