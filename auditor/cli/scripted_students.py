"""Students played by a script: the guide's steps as the console makes them, one boto3 call or two
each, with the classic mistakes (for `auditor demo --class` and bench/class_bench.py).

Each step does what a student's clicks do in the console: "Another AWS account" writes a trust to the
account's root, the Lambda console creates a function with its own "Hello from Lambda" code, a
3-second timeout and the handler `lambda_function.lambda_handler`, and step 8 replaces that code
with the guide's, the student's role ARN typed in. Nothing here is the project's code path: these
are the students, whose work the audit judges.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from auditor.domain.spec import DESTINATION_POLICY, ORIGIN_POLICY, ExpectedLab

if TYPE_CHECKING:
    from auditor.app.context import Context
    from auditor.domain.config import LabConfig

CONSOLE_HANDLER = "lambda_function.lambda_handler"
CONSOLE_RUNTIME = "python3.12"
CONSOLE_TIMEOUT = 3

# The Lambda console's code for a new Python function.
CONSOLE_CODE = """import json

def lambda_handler(event, context):
    # TODO implement
    return {
        'statusCode': 200,
        'body': json.dumps('Hello from Lambda!')
    }
"""

# Step 8's code, as the guide prints it (its indentation mended), with the student's role ARN.
GUIDE_CODE = """import json
import boto3
import os
import uuid

def lambda_handler(event, context):
    try:
        client = boto3.client('sts')
        response = client.assume_role(RoleArn='{role_arn}',RoleSessionName="{{}}-s3".format(str(uuid.uuid4())[:5]))
        session = boto3.Session(aws_access_key_id=response['Credentials']['AccessKeyId'],aws_secret_access_key=response['Credentials']['SecretAccessKey'],aws_session_token=response['Credentials']['SessionToken'])

        s3 = session.client('s3')
        s3list = s3.list_buckets()
        print (s3list)
        return str(s3list['Buckets'])

    except Exception as e:
        print(e)
        raise e
"""
GUIDE_PLACEHOLDER_ARN = "arn:aws:iam::account2:role/LambdaS3ListBuckets"


@dataclass(frozen=True)
class Desk:
    """One student's console: the pair's two accounts, as the lab names them."""

    expected: ExpectedLab
    client: Callable[[str, str], Any]  # (side, service) -> a boto3 client in that account

    @property
    def origin(self) -> str:
        return self.expected.origin_account

    @property
    def destination(self) -> str:
        return self.expected.destination_account


def desk_of(context: Context, lab: LabConfig) -> Desk:
    """A student's console on the accounts of `lab`, through the context's sessions."""
    expected = context.targets([lab.name])[0].expected
    return Desk(expected, lambda side, service: context.sessions.client(getattr(lab, side), service))


def console_trust(principal: str) -> dict[str, Any]:
    """The trust the console writes for "Another AWS account" (or a principal typed in its place)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole", "Condition": {}}
        ],
    }


def zipped(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", source)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ the guide's steps


def create_destination_role(desk: Desk, name: str | None = None, trusted_account: str | None = None) -> str:
    """Steps 1-4 in account 2: the role, trusting "Another AWS account" (account 1)."""
    role = name or desk.expected.destination_role.name
    account = trusted_account or desk.origin
    desk.client("destination", "iam").create_role(
        RoleName=role, AssumeRolePolicyDocument=json.dumps(console_trust(f"arn:aws:iam::{account}:root"))
    )
    trusted = "" if account == desk.origin else f", trusting account {account} (not the origin)"
    return f"creates role {role} in account {desk.destination}{trusted}"


def put_destination_policy(desk: Desk, role: str | None = None) -> str:
    """The inline policy LambdaS3ListBucketsPolicy: s3:ListAllMyBuckets."""
    spec = desk.expected.destination_role
    desk.client("destination", "iam").put_role_policy(
        RoleName=role or spec.name,
        PolicyName=DESTINATION_POLICY,
        PolicyDocument=json.dumps(spec.inline_policies[DESTINATION_POLICY]),
    )
    return f"adds the inline policy {DESTINATION_POLICY}"


def create_origin_role(desk: Desk, name: str | None = None) -> str:
    """In account 1: the role Lambda may assume."""
    spec = desk.expected.origin_role
    role = name or spec.name
    desk.client("origin", "iam").create_role(
        RoleName=role, AssumeRolePolicyDocument=json.dumps(spec.trust_policy)
    )
    return f"creates role {role} in account {desk.origin}, for Lambda"


def put_origin_policy(desk: Desk) -> str:
    """The inline policy Lambda-Assume-Roles-Policy: assume the destination role, write the logs."""
    spec = desk.expected.origin_role
    desk.client("origin", "iam").put_role_policy(
        RoleName=spec.name,
        PolicyName=ORIGIN_POLICY,
        PolicyDocument=json.dumps(spec.inline_policies[ORIGIN_POLICY]),
    )
    return f"adds the inline policy {ORIGIN_POLICY}"


def create_function(desk: Desk, role_name: str | None = None) -> str:
    """Step 6: the function, with the console's code and settings, running as the chosen role."""
    function = desk.expected.function
    role = role_name or desk.expected.origin_role.name
    desk.client("origin", "lambda").create_function(
        FunctionName=function.name,
        Runtime=CONSOLE_RUNTIME,
        Role=f"arn:aws:iam::{desk.origin}:role/{role}",
        Handler=CONSOLE_HANDLER,
        Timeout=CONSOLE_TIMEOUT,
        Code={"ZipFile": zipped(CONSOLE_CODE)},
    )
    return f"creates function {function.name} running as {role}"


def put_guide_code(desk: Desk, role_arn: str | None = None) -> str:
    """Step 8: the guide's code with a role ARN typed in (by default, the right one)."""
    arn = role_arn or desk.expected.destination_role.arn
    desk.client("origin", "lambda").update_function_code(
        FunctionName=desk.expected.function.name, ZipFile=zipped(GUIDE_CODE.format(role_arn=arn))
    )
    return f"puts the guide's code in the function, assuming {arn}"


def narrow_the_trust(desk: Desk) -> str:
    """A hardening: the destination's trust admits the origin's role only, not the whole account."""
    role = desk.expected.destination_role.name
    desk.client("destination", "iam").update_assume_role_policy(
        RoleName=role, PolicyDocument=json.dumps(console_trust(desk.expected.origin_role.arn))
    )
    return f"narrows the trust of {role} to {desk.expected.origin_role.arn}"


def tear_down(desk: Desk) -> str:
    """The guide's "Tear down this lab": the function, each role's inline policies, the roles."""
    function = desk.expected.function.name
    desk.client("origin", "lambda").delete_function(FunctionName=function)
    for side, spec in (
        ("destination", desk.expected.destination_role),
        ("origin", desk.expected.origin_role),
    ):
        iam = desk.client(side, "iam")
        for policy in iam.list_role_policies(RoleName=spec.name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=spec.name, PolicyName=policy)
        iam.delete_role(RoleName=spec.name)
    return "tears the lab down: the function, the policies, both roles"


# Every step of the guide, in its order, done right.
GUIDE_STEPS: tuple[Callable[[Desk], str], ...] = (
    create_destination_role,
    put_destination_policy,
    create_origin_role,
    put_origin_policy,
    create_function,
    put_guide_code,
)
