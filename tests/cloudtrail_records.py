"""CloudTrail records shaped as the CloudTrail user guide documents them ("CloudTrail record contents",
"CloudTrail userIdentity element"), for the tests: the `detail` of an EventBridge "AWS API Call via
CloudTrail" event, and the `CloudTrailEvent` string of LookupEvents' answer."""

from __future__ import annotations

import json
from typing import Any

STUDENT_ROLE = "student"


def assumed_role(account: str, session: str = "alice") -> dict[str, Any]:
    """A person in the console, through a role of the account (the usual classroom identity)."""
    return {
        "type": "AssumedRole",
        "principalId": f"AROAIDPPEZS35WEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{STUDENT_ROLE}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEKEY",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAIDPPEZS35WEXAMPLE",
                "arn": f"arn:aws:iam::{account}:role/{STUDENT_ROLE}",
                "accountId": account,
                "userName": STUDENT_ROLE,
            },
            "attributes": {"mfaAuthenticated": "false", "creationDate": "2026-11-29T13:58:02Z"},
        },
    }


def iam_user(account: str, name: str = "bob") -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDAJ45Q7YFFAREXAMPLE",
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": "AKIAEXAMPLEKEY",
        "userName": name,
    }


def root(account: str) -> dict[str, Any]:
    return {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": "",
    }


def record(
    account: str,
    event_name: str,
    parameters: dict[str, Any] | None,
    *,
    identity: dict[str, Any] | None = None,
    source: str = "iam.amazonaws.com",
    region: str = "us-east-1",
    time: str = "2026-11-29T14:02:11Z",
    event_id: str = "3f1c2a4e-8d7b-4c1e-9a5f-0e6d7c8b9a10",
    error: str | None = None,
) -> dict[str, Any]:
    """One management event's record, as CloudTrail writes it."""
    document: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity if identity is not None else assumed_role(account),
        "eventTime": time,
        "eventSource": source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.5",
        "userAgent": "console.amazonaws.com",
        "requestParameters": parameters,
        "responseElements": None,
        "requestID": "b1a2c3d4-0000-4000-8000-000000000000",
        "eventID": event_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if error is not None:
        document["errorCode"] = error
        document["errorMessage"] = "User is not authorized to perform this action"
    return document


def eventbridge_entry(detail: dict[str, Any]) -> dict[str, str]:
    """A PutEvents entry carrying a record as EventBridge delivers CloudTrail's: source aws.<service>."""
    service = str(detail["eventSource"]).split(".", 1)[0]
    return {
        "Source": f"aws.{service}",
        "DetailType": "AWS API Call via CloudTrail",
        "Detail": json.dumps(detail),
    }
