"""Assume the destination role and list the destination account's buckets.

The role ARN comes from the DESTINATION_ROLE_ARN environment variable. The answer is a JSON document;
credentials are never printed or returned.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import boto3
from botocore.exceptions import ClientError

ROLE_ARN_VARIABLE = "DESTINATION_ROLE_ARN"


def _fail(stage: str, error: ClientError) -> dict[str, Any]:
    details = error.response.get("Error", {})
    return {
        "ok": False,
        "stage": stage,
        "error_code": str(details.get("Code", "")),
        "error": str(details.get("Message", ""))[:500],
    }


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
        assumed = boto3.client("sts").assume_role(
            RoleArn=role_arn, RoleSessionName=f"{uuid.uuid4().hex[:5]}-s3"
        )
    except ClientError as error:
        return _fail("assume_role", error)
    credentials = assumed["Credentials"]
    s3 = boto3.client(
        "s3",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    try:
        listing = s3.list_buckets()
    except ClientError as error:
        return _fail("list_buckets", error)
    assumed_arn = assumed["AssumedRoleUser"]["Arn"]
    answer = {
        "ok": True,
        "assumed_role_arn": assumed_arn,
        "destination_account": assumed_arn.split(":")[4],
        "buckets": sorted(bucket["Name"] for bucket in listing.get("Buckets", [])),
    }
    print({key: answer[key] for key in ("assumed_role_arn", "destination_account")})
    return answer
