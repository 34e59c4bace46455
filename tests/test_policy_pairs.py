"""Policy pairs worked out by hand from IAM's documented evaluation rules, each with its reason.

Each pair is (expected, actual, direction): `none` when both allow exactly the same requests,
`narrowed` when actual allows less, `widened` when it allows more, `changed` when both. The reason
says which request makes the difference, by IAM's rules: an explicit Deny wins, every condition of a
statement must hold, several values of one key are alternatives, a negated operator on a missing key
holds, ...IfExists holds on a missing key, ARNs match segment by segment.

A witness is checked, not trusted: every difference names a request that IAM's evaluator
(auditor.iam.evaluate) finds allowed by the side it names and refused by the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from auditor.domain.model import Effect, Side
from auditor.iam.evaluate import allows
from auditor.policy import (
    PolicyDiff,
    PolicyEngine,
    compare_permissions,
    compare_trust,
    parse_policy,
    witness_request,
)

ORIGIN, DESTINATION, OTHER = "111111111111", "222222222222", "333333333333"
ROOT = f"arn:aws:iam::{ORIGIN}:root"
ROLE = f"arn:aws:iam::{ORIGIN}:role/Lambda-Assume-Roles"
BUCKET = "arn:aws:s3:::lab-bucket"

NONE, NARROWED, WIDENED, CHANGED = Effect.NONE, Effect.NARROWED, Effect.WIDENED, Effect.CHANGED
Doc = dict[str, Any]


def doc(*statements: Doc, version: str = "2012-10-17") -> Doc:
    return {"Version": version, "Statement": list(statements)}


def allow(action: Any = "s3:GetObject", resource: Any = "*", **condition: Any) -> Doc:
    statement: Doc = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def deny(action: Any = "s3:GetObject", resource: Any = "*", **condition: Any) -> Doc:
    return {**allow(action, resource, **condition), "Effect": "Deny"}


def when(operator: str, key: str, value: Any) -> dict[str, Any]:
    return {operator: {key: value}}


def cond(action: Any, operator: str, key: str, value: Any, resource: Any = "*", effect: str = "Allow") -> Doc:
    return {"Effect": effect, "Action": action, "Resource": resource, "Condition": when(operator, key, value)}


def admit(principal: Any, action: Any = "sts:AssumeRole", condition: dict[str, Any] | None = None) -> Doc:
    statement: Doc = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return statement


def refuse(principal: Any, action: Any = "sts:AssumeRole", condition: dict[str, Any] | None = None) -> Doc:
    return {**admit(principal, action, condition), "Effect": "Deny"}


@dataclass(frozen=True)
class Pair:
    expected: Doc
    actual: Doc
    direction: Effect
    why: str
    trust: bool = False


def permissions(expected: Doc, actual: Doc, direction: Effect, why: str) -> Pair:
    return Pair(expected, actual, direction, why)


def trust(expected: Doc, actual: Doc, direction: Effect, why: str) -> Pair:
    return Pair(expected, actual, direction, why, trust=True)


G = "s3:GetObject"
K = "aws:username"

PAIRS: dict[str, Pair] = {
    # ------------------------------------------------------------------------- string operators
    "string-equals-adds-a-value": permissions(
        doc(cond(G, "StringEquals", K, "alice")),
        doc(cond(G, "StringEquals", K, ["alice", "bob"])),
        WIDENED,
        "values of one key are alternatives: bob is newly allowed",
    ),
    "string-equals-drops-a-value": permissions(
        doc(cond(G, "StringEquals", K, ["alice", "bob"])),
        doc(cond(G, "StringEquals", K, "alice")),
        NARROWED,
        "bob is no longer allowed",
    ),
    "string-equals-other-value": permissions(
        doc(cond(G, "StringEquals", K, "alice")),
        doc(cond(G, "StringEquals", K, "bob")),
        CHANGED,
        "alice lost, bob gained",
    ),
    "string-like-without-wildcard-is-equals": permissions(
        doc(cond(G, "StringEquals", K, "alice")),
        doc(cond(G, "StringLike", K, "alice")),
        NONE,
        "a StringLike value without * or ? matches that value only",
    ),
    "string-equals-star-is-literal": permissions(
        doc(cond(G, "StringEquals", K, "al*")),
        doc(cond(G, "StringLike", K, "al*")),
        WIDENED,
        "StringEquals reads * as a character; StringLike as any run: alice is newly allowed",
    ),
    "string-like-longer-prefix": permissions(
        doc(cond(G, "StringLike", K, "a*")),
        doc(cond(G, "StringLike", K, "ab*")),
        NARROWED,
        "ac no longer matches",
    ),
    "string-like-star-requires-the-key": permissions(
        doc(cond(G, "StringLike", K, "*")),
        doc(allow(G)),
        WIDENED,
        "StringLike * fails on a missing key; without the condition a request without it is allowed",
    ),
    "string-not-equals-excludes-more": permissions(
        doc(cond(G, "StringNotEquals", K, "alice")),
        doc(cond(G, "StringNotEquals", K, ["alice", "bob"])),
        NARROWED,
        "bob is now excluded",
    ),
    "string-not-equals-removed": permissions(
        doc(cond(G, "StringNotEquals", K, "alice")),
        doc(allow(G)),
        WIDENED,
        "alice is allowed again",
    ),
    "string-not-equals-holds-on-a-missing-key": permissions(
        doc(cond(G, "StringNotEquals", K, "alice")),
        doc(cond(G, "StringNotEqualsIfExists", K, "alice")),
        NONE,
        "a negated operator holds when the key is missing, as IfExists does",
    ),
    "string-equals-ignore-case-narrowed-to-exact": permissions(
        doc(cond(G, "StringEqualsIgnoreCase", K, "ALICE")),
        doc(cond(G, "StringEquals", K, "alice")),
        NARROWED,
        "ALICE and Alice are no longer allowed",
    ),
    "string-equals-widened-to-ignore-case": permissions(
        doc(cond(G, "StringEquals", K, "alice")),
        doc(cond(G, "StringEqualsIgnoreCase", K, "alice")),
        WIDENED,
        "Alice is newly allowed",
    ),
    "string-not-like-shorter-pattern": permissions(
        doc(cond(G, "StringNotLike", K, "*test*")),
        doc(cond(G, "StringNotLike", K, "*tes*")),
        NARROWED,
        "tesx is now excluded too",
    ),
    "string-like-values-split-over-statements": permissions(
        doc(cond(G, "StringLike", K, ["a*", "b*"])),
        doc(cond(G, "StringLike", K, "a*"), cond(G, "StringLike", K, "b*")),
        NONE,
        "two statements with one value each allow what one with both does",
    ),
    "string-equals-if-exists-made-strict": permissions(
        doc(cond(G, "StringEqualsIfExists", K, "alice")),
        doc(cond(G, "StringEquals", K, "alice")),
        NARROWED,
        "a request without the key is no longer allowed",
    ),
    "string-like-question-mark-to-star": permissions(
        doc(cond(G, "StringLike", K, "?")),
        doc(cond(G, "StringLike", K, "*")),
        WIDENED,
        "the empty string and longer names now match",
    ),
    "condition-key-letter-case": permissions(
        doc(cond(G, "StringEquals", "AWS:UserName", "alice")),
        doc(cond(G, "StringEquals", "aws:username", "alice")),
        NONE,
        "condition keys are not case-sensitive",
    ),
    "condition-values-reordered": permissions(
        doc(cond(G, "StringEquals", K, ["b", "a"])),
        doc(cond(G, "StringEquals", K, ["a", "b"])),
        NONE,
        "the order of values means nothing",
    ),
    "string-equals-case-sensitive": permissions(
        doc(cond(G, "StringEquals", K, "alice")),
        doc(cond(G, "StringEquals", K, "Alice")),
        CHANGED,
        "StringEquals is case-sensitive",
    ),
    "string-not-like-removed-values": permissions(
        doc(cond(G, "StringNotLike", K, ["a*", "b*"])),
        doc(cond(G, "StringNotLike", K, "a*")),
        WIDENED,
        "names starting with b are allowed again",
    ),
    "two-keys-in-one-operator-both-hold": permissions(
        doc(allow(G, StringEquals={K: "alice", "aws:RequestedRegion": "us-east-1"})),
        doc(cond(G, "StringEquals", K, "alice")),
        WIDENED,
        "every key of a condition must hold: the region is no longer required",
    ),
    "condition-split-into-two-statements": permissions(
        doc(allow(G, StringEquals={K: "alice", "aws:RequestedRegion": "us-east-1"})),
        doc(cond(G, "StringEquals", K, "alice"), cond(G, "StringEquals", "aws:RequestedRegion", "us-east-1")),
        WIDENED,
        "two statements are alternatives: alice anywhere, or anyone in us-east-1",
    ),
    "two-operators-merged": permissions(
        doc(cond(G, "StringEquals", K, "alice"), cond(G, "StringLike", K, "b*")),
        doc(cond(G, "StringLike", K, ["alice", "b*"])),
        NONE,
        "alternatives in two statements or in one list",
    ),
    # ------------------------------------------------------------------------ numeric operators
    "numeric-less-than-to-less-than-equals": permissions(
        doc(cond(G, "NumericLessThan", "aws:MultiFactorAuthAge", "3600")),
        doc(cond(G, "NumericLessThanEquals", "aws:MultiFactorAuthAge", "3600")),
        WIDENED,
        "3600 is newly allowed",
    ),
    "numeric-split-covers-every-number": permissions(
        doc(
            cond(G, "NumericLessThanEquals", "s3:max-keys", "10"),
            cond(G, "NumericGreaterThan", "s3:max-keys", "10"),
        ),
        doc(
            cond(G, "NumericLessThan", "s3:max-keys", "5"),
            cond(G, "NumericGreaterThanEquals", "s3:max-keys", "5"),
        ),
        NONE,
        "both pairs together allow every number, and neither a request without the key",
    ),
    "numeric-split-with-a-gap": permissions(
        doc(
            cond(G, "NumericLessThanEquals", "s3:max-keys", "10"),
            cond(G, "NumericGreaterThan", "s3:max-keys", "10"),
        ),
        doc(
            cond(G, "NumericLessThanEquals", "s3:max-keys", "9"),
            cond(G, "NumericGreaterThan", "s3:max-keys", "10"),
        ),
        NARROWED,
        "9.5 and 10 are no longer allowed",
    ),
    "numeric-equals-decimal-spelling": permissions(
        doc(cond(G, "NumericEquals", "s3:max-keys", "5")),
        doc(cond(G, "NumericEquals", "s3:max-keys", "5.0")),
        NONE,
        "5 and 5.0 are one number",
    ),
    "numeric-greater-than-decimals-between": permissions(
        doc(cond(G, "NumericGreaterThan", "s3:max-keys", "5")),
        doc(cond(G, "NumericGreaterThanEquals", "s3:max-keys", "6")),
        NARROWED,
        "5.5 is no longer allowed",
    ),
    "numeric-not-equals-removed": permissions(
        doc(cond(G, "NumericNotEquals", "s3:max-keys", "5")),
        doc(allow(G)),
        WIDENED,
        "5 is allowed again",
    ),
    "numeric-if-exists-added": permissions(
        doc(cond(G, "NumericLessThan", "aws:MultiFactorAuthAge", "3600")),
        doc(cond(G, "NumericLessThanIfExists", "aws:MultiFactorAuthAge", "3600")),
        WIDENED,
        "a request without MFA (no key) is newly allowed",
    ),
    "numeric-range-shifted": permissions(
        doc(cond(G, "NumericLessThan", "s3:max-keys", "100")),
        doc(cond(G, "NumericGreaterThan", "s3:max-keys", "100")),
        CHANGED,
        "50 lost, 150 gained",
    ),
    "numeric-less-than-values-alternatives": permissions(
        doc(cond(G, "NumericLessThan", "s3:max-keys", ["10", "20"])),
        doc(cond(G, "NumericLessThan", "s3:max-keys", "20")),
        NONE,
        "less than 10 or less than 20 is less than 20",
    ),
    "numeric-greater-than-equals-lowered": permissions(
        doc(cond(G, "NumericGreaterThanEquals", "s3:max-keys", "10")),
        doc(cond(G, "NumericGreaterThanEquals", "s3:max-keys", "1")),
        WIDENED,
        "5 is newly allowed",
    ),
    "numeric-not-equals-holds-on-a-missing-key": permissions(
        doc(
            cond(G, "NumericLessThan", "s3:max-keys", "5"),
            cond(G, "NumericGreaterThanEquals", "s3:max-keys", "5"),
        ),
        doc(cond(G, "NumericEquals", "s3:max-keys", "5"), cond(G, "NumericNotEquals", "s3:max-keys", "5")),
        WIDENED,
        "NumericNotEquals holds when the key is missing: a request without it is newly allowed",
    ),
    "numeric-equals-replaced-by-not-equals": permissions(
        doc(cond(G, "NumericEquals", "s3:max-keys", "1")),
        doc(cond(G, "NumericNotEquals", "s3:max-keys", "1")),
        CHANGED,
        "1 lost, 2 gained",
    ),
    # --------------------------------------------------------------------------- date operators
    "date-less-than-earlier": permissions(
        doc(cond(G, "DateLessThan", "aws:CurrentTime", "2027-01-01T00:00:00Z")),
        doc(cond(G, "DateLessThan", "aws:CurrentTime", "2026-01-01T00:00:00Z")),
        NARROWED,
        "mid-2026 is no longer allowed",
    ),
    "date-iso-and-epoch-spellings": permissions(
        doc(cond(G, "DateGreaterThan", "aws:CurrentTime", "2026-01-01T00:00:00Z")),
        doc(cond(G, "DateGreaterThan", "aws:CurrentTime", "1767225600")),
        NONE,
        "the same instant written as ISO 8601 or epoch seconds",
    ),
    "date-equals-to-not-equals": permissions(
        doc(cond(G, "DateEquals", "aws:CurrentTime", "2026-06-01T00:00:00Z")),
        doc(cond(G, "DateNotEquals", "aws:CurrentTime", "2026-06-01T00:00:00Z")),
        CHANGED,
        "that instant lost, every other gained",
    ),
    "date-less-than-equals-to-less-than": permissions(
        doc(cond(G, "DateLessThanEquals", "aws:CurrentTime", "2026-06-01T00:00:00Z")),
        doc(cond(G, "DateLessThan", "aws:CurrentTime", "2026-06-01T00:00:00Z")),
        NARROWED,
        "the instant itself is no longer allowed",
    ),
    "date-window-widened": permissions(
        doc(allow(G, DateGreaterThan={"aws:CurrentTime": "2026-01-01T00:00:00Z"})),
        doc(allow(G)),
        WIDENED,
        "a request before 2026 (or without the key) is newly allowed",
    ),
    "date-zone-offset-spelling": permissions(
        doc(cond(G, "DateLessThan", "aws:CurrentTime", "2026-06-01T02:00:00+02:00")),
        doc(cond(G, "DateLessThan", "aws:CurrentTime", "2026-06-01T00:00:00Z")),
        NONE,
        "02:00 at +02:00 is midnight UTC",
    ),
    "date-token-issue-time-if-exists": permissions(
        doc(cond(G, "DateGreaterThan", "aws:TokenIssueTime", "2026-01-01T00:00:00Z")),
        doc(cond(G, "DateGreaterThanIfExists", "aws:TokenIssueTime", "2026-01-01T00:00:00Z")),
        WIDENED,
        "long-term credentials (no token, no key) are newly allowed",
    ),
    # ---------------------------------------------------------------------------- bool / binary
    "bool-value-case": permissions(
        doc(cond(G, "Bool", "aws:SecureTransport", "true")),
        doc(cond(G, "Bool", "aws:SecureTransport", "True")),
        NONE,
        "Bool values are not case-sensitive",
    ),
    "bool-json-boolean": permissions(
        doc(cond(G, "Bool", "aws:SecureTransport", "true")),
        doc(cond(G, "Bool", "aws:SecureTransport", True)),
        NONE,
        "a JSON true is the string true",
    ),
    "bool-if-exists": permissions(
        doc(cond(G, "Bool", "aws:MultiFactorAuthPresent", "true")),
        doc(cond(G, "BoolIfExists", "aws:MultiFactorAuthPresent", "true")),
        WIDENED,
        "a request without the key is newly allowed",
    ),
    "bool-flipped": permissions(
        doc(cond(G, "Bool", "aws:SecureTransport", "true")),
        doc(cond(G, "Bool", "aws:SecureTransport", "false")),
        CHANGED,
        "TLS lost, plain HTTP gained",
    ),
    "bool-both-values": permissions(
        doc(cond(G, "Bool", "aws:SecureTransport", "true")),
        doc(cond(G, "Bool", "aws:SecureTransport", ["true", "false"])),
        WIDENED,
        "plain HTTP newly allowed",
    ),
    "binary-other-value": permissions(
        doc(cond(G, "BinaryEquals", "aws:UserAgent", "QmluYXJ5")),
        doc(cond(G, "BinaryEquals", "aws:UserAgent", "T3RoZXI=")),
        CHANGED,
        "one value lost, another gained",
    ),
    "binary-removed": permissions(
        doc(cond(G, "BinaryEquals", "aws:UserAgent", "QmluYXJ5")),
        doc(allow(G)),
        WIDENED,
        "any value, or none, is newly allowed",
    ),
    # ---------------------------------------------------------------------------------------- IP
    "ip-smaller-network": permissions(
        doc(cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/8")),
        doc(cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/16")),
        NARROWED,
        "10.1.0.1 is no longer allowed",
    ),
    "ip-network-split-in-halves": permissions(
        doc(cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/8")),
        doc(cond(G, "IpAddress", "aws:SourceIp", ["10.0.0.0/9", "10.128.0.0/9"])),
        NONE,
        "the two halves are the whole network",
    ),
    "ip-to-not-ip": permissions(
        doc(cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/8")),
        doc(cond(G, "NotIpAddress", "aws:SourceIp", "10.0.0.0/8")),
        CHANGED,
        "10.0.0.1 lost, 11.0.0.1 gained",
    ),
    "ip-single-address-spellings": permissions(
        doc(cond(G, "IpAddress", "aws:SourceIp", "203.0.113.5")),
        doc(cond(G, "IpAddress", "aws:SourceIp", "203.0.113.5/32")),
        NONE,
        "an address is its /32",
    ),
    "ip-v4-to-v6": permissions(
        doc(cond(G, "IpAddress", "aws:SourceIp", "0.0.0.0/0")),
        doc(cond(G, "IpAddress", "aws:SourceIp", "::/0")),
        CHANGED,
        "every IPv4 address lost, every IPv6 one gained",
    ),
    "ip-deny-outside-the-allowed-network": permissions(
        doc(cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/8")),
        doc(
            cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/8"),
            cond(G, "NotIpAddress", "aws:SourceIp", "10.0.0.0/8", effect="Deny"),
        ),
        NONE,
        "the Deny fires only outside 10/8, where nothing was allowed",
    ),
    "ip-lost-deny-outside-the-allowed-network": permissions(
        doc(
            cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/8"),
            cond(G, "NotIpAddress", "aws:SourceIp", "10.0.0.0/8", effect="Deny"),
        ),
        doc(cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/8")),
        NONE,
        "the lost Deny fired only where the Allow never held",
    ),
    "ip-guard-deny-removed": permissions(
        doc(allow(G), cond(G, "NotIpAddress", "aws:SourceIp", "10.0.0.0/8", effect="Deny")),
        doc(allow(G)),
        WIDENED,
        "a request from 11.0.0.1 is allowed again",
    ),
    "not-ip-network-grown": permissions(
        doc(cond(G, "NotIpAddress", "aws:SourceIp", "10.0.0.0/16")),
        doc(cond(G, "NotIpAddress", "aws:SourceIp", "10.0.0.0/8")),
        NARROWED,
        "10.1.0.1 is now excluded",
    ),
    "ip-if-exists": permissions(
        doc(cond(G, "IpAddress", "aws:SourceIp", "10.0.0.0/8")),
        doc(cond(G, "IpAddressIfExists", "aws:SourceIp", "10.0.0.0/8")),
        WIDENED,
        "a request without a source IP (made by a service) is newly allowed",
    ),
    "not-ip-holds-on-a-missing-key": permissions(
        doc(cond(G, "NotIpAddress", "aws:SourceIp", "10.0.0.0/8")),
        doc(cond(G, "NotIpAddressIfExists", "aws:SourceIp", "10.0.0.0/8")),
        NONE,
        "a negated operator holds on a missing key: IfExists adds nothing",
    ),
    # --------------------------------------------------------------------------------------- ARN
    "arn-like-and-arn-equals": permissions(
        doc(cond(G, "ArnLike", "aws:SourceArn", "arn:aws:s3:::lab-bucket")),
        doc(cond(G, "ArnEquals", "aws:SourceArn", "arn:aws:s3:::lab-bucket")),
        NONE,
        "ArnEquals and ArnLike are one operator",
    ),
    "arn-like-region-pinned": permissions(
        doc(cond(G, "ArnLike", "aws:SourceArn", f"arn:aws:lambda:*:{ORIGIN}:function:*")),
        doc(cond(G, "ArnLike", "aws:SourceArn", f"arn:aws:lambda:us-east-1:{ORIGIN}:function:*")),
        NARROWED,
        "a function in eu-west-1 is no longer allowed",
    ),
    "arn-not-like-and-not-equals": permissions(
        doc(cond(G, "ArnNotLike", "aws:SourceArn", BUCKET)),
        doc(cond(G, "ArnNotEquals", "aws:SourceArn", BUCKET)),
        NONE,
        "the negated ARN operators are one operator",
    ),
    "arn-like-to-string-like-crosses-segments": permissions(
        doc(cond(G, "ArnLike", "aws:SourceArn", "arn:aws:iam::*:role/x")),
        doc(cond(G, "StringLike", "aws:SourceArn", "arn:aws:iam::*:role/x")),
        WIDENED,
        "StringLike's * crosses colons (arn:aws:iam::1:2:role/x); ArnLike's stays in its segment",
    ),
    "arn-like-account-wildcard-added": permissions(
        doc(cond(G, "ArnLike", "aws:SourceArn", f"arn:aws:sqs:us-east-1:{ORIGIN}:queue")),
        doc(cond(G, "ArnLike", "aws:SourceArn", "arn:aws:sqs:us-east-1:*:queue")),
        WIDENED,
        "a queue of another account is newly allowed",
    ),
    "arn-not-like-removed": permissions(
        doc(cond(G, "ArnNotLike", "aws:SourceArn", f"arn:aws:sqs:*:{OTHER}:*")),
        doc(allow(G)),
        WIDENED,
        "a source in account 333... is allowed again",
    ),
    # -------------------------------------------------------------------------------------- Null
    "null-true-to-false": permissions(
        doc(cond(G, "Null", "aws:TokenIssueTime", "true")),
        doc(cond(G, "Null", "aws:TokenIssueTime", "false")),
        CHANGED,
        "long-term credentials lost, temporary ones gained",
    ),
    "null-false-is-string-like-star": permissions(
        doc(cond(G, "Null", K, "false")),
        doc(cond(G, "StringLike", K, "*")),
        NONE,
        "present with any value is what StringLike * asks",
    ),
    "null-either-way": permissions(
        doc(cond(G, "Null", K, ["true", "false"])),
        doc(allow(G)),
        NONE,
        "present or absent: always true",
    ),
    "null-guard-deny-of-absent-key": permissions(
        doc(allow(G, StringLike={"aws:PrincipalTag/team": "*"})),
        doc(
            allow(G, StringLike={"aws:PrincipalTag/team": "*"}),
            deny(G, Null={"aws:PrincipalTag/team": "true"}),
        ),
        NONE,
        "the Deny fires when the tag is absent, where the Allow (tag present) never held",
    ),
    "null-guard-deny-lost": permissions(
        doc(
            allow(G, StringLike={"aws:PrincipalTag/team": "*"}),
            deny(G, Null={"aws:PrincipalTag/team": "true"}),
        ),
        doc(allow(G, StringLike={"aws:PrincipalTag/team": "*"})),
        NONE,
        "a lost Deny the remaining Allow's conditions make unreachable",
    ),
    "null-guard-deny-lost-with-the-allow-condition": permissions(
        doc(allow(G), deny(G, Null={"aws:PrincipalTag/team": "true"})),
        doc(allow(G)),
        WIDENED,
        "without the tag condition on the Allow, a request without the tag is allowed again",
    ),
    # --------------------------------------------------------------------------------- IfExists
    "string-like-if-exists-user-agent": permissions(
        doc(cond("sts:AssumeRole", "StringLikeIfExists", "aws:UserAgent", "*python*")),
        doc(cond("sts:AssumeRole", "StringLike", "aws:UserAgent", "*python*")),
        NARROWED,
        "a request without a User-Agent is no longer allowed",
    ),
    "if-exists-deny": permissions(
        doc(allow(G), cond(G, "StringNotEquals", K, "alice", effect="Deny")),
        doc(allow(G), cond(G, "StringNotEqualsIfExists", K, "alice", effect="Deny")),
        NONE,
        "the negated Deny already fires on a missing key",
    ),
    # ------------------------------------------------------------------------------ set operators
    "for-any-value-adds-a-tag": permissions(
        doc(cond(G, "ForAnyValue:StringEquals", "aws:TagKeys", ["team"])),
        doc(cond(G, "ForAnyValue:StringEquals", "aws:TagKeys", ["team", "env"])),
        WIDENED,
        "a request tagging only env is newly allowed",
    ),
    "for-all-values-drops-a-tag": permissions(
        doc(cond(G, "ForAllValues:StringEquals", "aws:TagKeys", ["team", "env"])),
        doc(cond(G, "ForAllValues:StringEquals", "aws:TagKeys", ["team"])),
        NARROWED,
        "a request tagging env is no longer allowed",
    ),
    "for-all-values-removed": permissions(
        doc(cond(G, "ForAllValues:StringEquals", "aws:TagKeys", ["team"])),
        doc(allow(G)),
        WIDENED,
        "a request tagging owner is newly allowed",
    ),
    "for-any-value-to-for-all-values": permissions(
        doc(cond(G, "ForAnyValue:StringEquals", "aws:TagKeys", ["team"])),
        doc(cond(G, "ForAllValues:StringEquals", "aws:TagKeys", ["team"])),
        CHANGED,
        "{team, owner} lost (not all are team); no tags at all gained (ForAllValues holds vacuously)",
    ),
    "for-all-values-like-more-patterns": permissions(
        doc(cond(G, "ForAllValues:StringLike", "aws:TagKeys", ["lab-*"])),
        doc(cond(G, "ForAllValues:StringLike", "aws:TagKeys", ["lab-*", "x"])),
        WIDENED,
        "a request tagging x is newly allowed",
    ),
    "for-any-value-split-over-statements": permissions(
        doc(cond(G, "ForAnyValue:StringEquals", "aws:TagKeys", ["a", "b"])),
        doc(
            cond(G, "ForAnyValue:StringEquals", "aws:TagKeys", ["a"]),
            cond(G, "ForAnyValue:StringEquals", "aws:TagKeys", ["b"]),
        ),
        NONE,
        "any of a or b, in one statement or two",
    ),
    "for-any-value-not-equals": permissions(
        doc(cond(G, "ForAnyValue:StringNotEquals", "aws:TagKeys", ["a"])),
        doc(cond(G, "ForAllValues:StringNotEquals", "aws:TagKeys", ["a"])),
        CHANGED,
        "{a, b} lost (one is a); no tags gained (vacuous)",
    ),
    "for-any-value-missing-key-fails": permissions(
        doc(cond(G, "ForAnyValue:StringLike", "aws:TagKeys", ["*"])),
        doc(allow(G)),
        WIDENED,
        "ForAnyValue fails without the key: a request without tags is newly allowed",
    ),
    # -------------------------------------------------------------------------- Deny semantics
    "deny-removed": permissions(
        doc(allow("s3:*"), deny("s3:DeleteObject")),
        doc(allow("s3:*")),
        WIDENED,
        "DeleteObject is allowed again",
    ),
    "deny-added-on-allowed": permissions(
        doc(allow("s3:*")),
        doc(allow("s3:*"), deny("s3:DeleteObject")),
        NARROWED,
        "DeleteObject is no longer allowed",
    ),
    "deny-of-never-allowed": permissions(
        doc(allow(G)),
        doc(allow(G), deny("ec2:*")),
        NONE,
        "a Deny of what was never allowed changes nothing",
    ),
    "deny-broadened-over-never-allowed": permissions(
        doc(allow(G, f"{BUCKET}/*"), deny("s3:DeleteObject", f"{BUCKET}/*")),
        doc(allow(G, f"{BUCKET}/*"), deny("s3:Delete*", "*")),
        NONE,
        "the Deny's new part covers only what was never allowed",
    ),
    "deny-narrowed": permissions(
        doc(allow("s3:*"), deny("s3:Delete*")),
        doc(allow("s3:*"), deny("s3:DeleteBucket")),
        WIDENED,
        "DeleteObject is allowed again",
    ),
    "deny-broadened-over-allowed": permissions(
        doc(allow("s3:*"), deny("s3:DeleteBucket")),
        doc(allow("s3:*"), deny("s3:Delete*")),
        NARROWED,
        "DeleteObject is denied now",
    ),
    "deny-under-condition-added": permissions(
        doc(allow(G)),
        doc(allow(G), cond(G, "Bool", "aws:SecureTransport", "false", effect="Deny")),
        NARROWED,
        "plain HTTP is refused now",
    ),
    "deny-under-condition-the-allow-excludes": permissions(
        doc(cond(G, "Bool", "aws:SecureTransport", "true")),
        doc(
            cond(G, "Bool", "aws:SecureTransport", "true"),
            cond(G, "Bool", "aws:SecureTransport", "false", effect="Deny"),
        ),
        NONE,
        "the Deny fires on plain HTTP, which the Allow never admitted",
    ),
    "deny-with-not-action-guardrail": permissions(
        doc(allow(G)),
        doc(allow(G), {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}),
        NONE,
        "the guardrail denies everything outside s3, which was never allowed",
    ),
    "deny-condition-loosened": permissions(
        doc(allow("s3:*"), cond("s3:*", "StringNotEquals", K, ["alice", "bob"], effect="Deny")),
        doc(allow("s3:*"), cond("s3:*", "StringNotEquals", K, "alice", effect="Deny")),
        NARROWED,
        "bob is now denied",
    ),
    "deny-and-allow-same-action": permissions(
        doc(allow(G)),
        doc(allow(G), deny(G)),
        NARROWED,
        "an explicit Deny wins over the Allow",
    ),
    "deny-other-resource": permissions(
        doc(allow(G, f"{BUCKET}/*")),
        doc(allow(G, f"{BUCKET}/*"), deny(G, "arn:aws:s3:::other/*")),
        NONE,
        "the Deny's resource was never allowed",
    ),
    "allow-re-added-under-deny": permissions(
        doc(allow(G), deny(G)),
        doc(deny(G)),
        NONE,
        "the Allow was dead under the Deny: neither allows anything",
    ),
    # ------------------------------------------------------------------------------ Not* elements
    "not-action-to-star": permissions(
        doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
        doc(allow("*")),
        WIDENED,
        "iam actions are newly allowed",
    ),
    "not-action-excludes-more": permissions(
        doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
        doc({"Effect": "Allow", "NotAction": ["iam:*", "sts:*"], "Resource": "*"}),
        NARROWED,
        "sts actions are no longer allowed",
    ),
    "not-resource-to-star": permissions(
        doc({"Effect": "Allow", "Action": G, "NotResource": "arn:aws:s3:::secret/*"}),
        doc(allow(G)),
        WIDENED,
        "the secret objects are newly allowed",
    ),
    "not-resource-excludes-more": permissions(
        doc({"Effect": "Allow", "Action": G, "NotResource": "arn:aws:s3:::secret/*"}),
        doc({"Effect": "Allow", "Action": G, "NotResource": ["arn:aws:s3:::secret/*", f"{BUCKET}/*"]}),
        NARROWED,
        "the lab bucket's objects are no longer allowed",
    ),
    "not-action-equivalent-listing": permissions(
        doc({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}, allow("s3:*")),
        doc(allow("*")),
        NONE,
        "everything but s3, and s3: everything",
    ),
    "not-resource-deny": permissions(
        doc(allow(G)),
        doc(allow(G), {"Effect": "Deny", "Action": G, "NotResource": f"{BUCKET}/*"}),
        NARROWED,
        "objects outside the lab bucket are refused now",
    ),
    # ----------------------------------------------------------------- ARN segments, resources
    "bucket-objects-to-bucket-prefix": permissions(
        doc(allow(G, f"{BUCKET}/*")),
        doc(allow(G, f"{BUCKET}*")),
        WIDENED,
        "the objects of lab-bucket2 are newly allowed",
    ),
    "region-wildcard-pinned": permissions(
        doc(allow("logs:PutLogEvents", f"arn:aws:logs:*:{ORIGIN}:log-group:x")),
        doc(allow("logs:PutLogEvents", f"arn:aws:logs:us-east-1:{ORIGIN}:log-group:x")),
        NARROWED,
        "the group in eu-west-1 is no longer allowed",
    ),
    "account-wildcard-pinned": permissions(
        doc(allow("iam:PassRole", "arn:aws:iam::*:role/x")),
        doc(allow("iam:PassRole", f"arn:aws:iam::{ORIGIN}:role/x")),
        NARROWED,
        "role x of another account is no longer allowed",
    ),
    "resource-part-holds-colons": permissions(
        doc(allow("logs:PutLogEvents", f"arn:aws:logs:us-east-1:{ORIGIN}:log-group:g:*")),
        doc(allow("logs:PutLogEvents", f"arn:aws:logs:us-east-1:{ORIGIN}:log-group:g:log-stream:*")),
        NARROWED,
        "the resource part is one glob, colons and all: log-group:g:other is no longer allowed",
    ),
    "service-scoped-arn-to-star": permissions(
        doc(allow("logs:PutLogEvents", "arn:aws:logs:*:*:*")),
        doc(allow("logs:PutLogEvents", "*")),
        WIDENED,
        "a resource that is not a logs ARN is newly allowed",
    ),
    "service-wildcard-in-arn": permissions(
        doc(allow("s3:GetObject", f"arn:aws:*:us-east-1:{ORIGIN}:*")),
        doc(allow("s3:GetObject", f"arn:aws:s3:us-east-1:{ORIGIN}:*")),
        NARROWED,
        "an ARN of another service is no longer allowed",
    ),
    "account-prefix-wildcard": permissions(
        doc(allow("iam:PassRole", "arn:aws:iam::1*:role/x")),
        doc(allow("iam:PassRole", f"arn:aws:iam::{ORIGIN}:role/x")),
        NARROWED,
        "role x of account 123456789012 is no longer allowed",
    ),
    "object-key-made-non-empty": permissions(
        doc(allow(G, f"{BUCKET}/*")),
        doc(allow(G, f"{BUCKET}/?*")),
        NARROWED,
        "the object with the empty key is no longer allowed",
    ),
    "account-star-stays-in-its-segment": permissions(
        doc(allow("iam:PassRole", "arn:aws:iam::*:role/x")),
        doc(allow("iam:PassRole", ["arn:aws:iam::*:role/x", "arn:aws:iam::1:2:role/x"])),
        WIDENED,
        "the account * does not reach across a colon: arn:aws:iam::1:2:role/x is new",
    ),
    "region-star-stays-in-its-segment": permissions(
        doc(allow("logs:PutLogEvents", f"arn:aws:logs:*:{ORIGIN}:log-group:x")),
        doc(
            allow(
                "logs:PutLogEvents",
                [f"arn:aws:logs:*:{ORIGIN}:log-group:x", f"arn:aws:logs:a:b:{ORIGIN}:log-group:x"],
            )
        ),
        WIDENED,
        "the region * matches one segment: a:b is a new resource",
    ),
    "same-resource-two-spellings": permissions(
        doc(allow(G, [f"{BUCKET}/*", f"{BUCKET}/a*"])),
        doc(allow(G, f"{BUCKET}/*")),
        NONE,
        "b/a* is inside b/*",
    ),
    "resource-list-split": permissions(
        doc(allow(G, [f"{BUCKET}/a/*", f"{BUCKET}/b/*"])),
        doc(allow(G, f"{BUCKET}/a/*"), allow(G, f"{BUCKET}/b/*")),
        NONE,
        "a list of resources is alternatives, as statements are",
    ),
    "list-all-my-buckets-needs-star": permissions(
        doc(allow("s3:ListAllMyBuckets")),
        doc(allow("s3:ListAllMyBuckets", "arn:aws:s3:::*")),
        NARROWED,
        "the request's resource is *, which arn:aws:s3:::* does not match",
    ),
    "question-mark-one-character": permissions(
        doc(allow(G, f"{BUCKET}/?")),
        doc(allow(G, f"{BUCKET}/*")),
        WIDENED,
        "the object ab is newly allowed",
    ),
    "star-resource-and-arn-star": permissions(
        doc(allow(G, "*")),
        doc(allow(G, "arn:*")),
        NARROWED,
        "a resource not starting with arn: is no longer allowed",
    ),
    # -------------------------------------------------------------------------------- actions
    "action-prefix-narrowed": permissions(
        doc(allow("s3:Get*")),
        doc(allow("s3:Get*Object*")),
        NARROWED,
        "s3:GetBucketPolicy is no longer allowed",
    ),
    "service-star-to-star": permissions(
        doc(allow("s3:*")),
        doc(allow("*")),
        WIDENED,
        "every other service is newly allowed",
    ),
    "action-letter-case": permissions(
        doc(allow("S3:GETOBJECT")),
        doc(allow("s3:getobject")),
        NONE,
        "action names are not case-sensitive",
    ),
    "role-glob-to-one-action": permissions(
        doc(allow("iam:*Role*")),
        doc(allow("iam:CreateRole")),
        NARROWED,
        "iam:DeleteRole is no longer allowed",
    ),
    "question-mark-in-action": permissions(
        doc(allow("s3:ListAllMyBucket?")),
        doc(allow("s3:ListAllMyBuckets")),
        NONE,
        "the only action the pattern names",
    ),
    "unknown-service-action": permissions(
        doc(allow(G)),
        doc(allow(G), allow("newservice:*")),
        WIDENED,
        "a service the catalogue does not know is taken at its word",
    ),
    "action-glob-with-deny-inside": permissions(
        doc(allow("s3:Get*")),
        doc(allow("s3:Get*"), deny(G)),
        NARROWED,
        "GetObject is denied now",
    ),
    "actions-split-over-statements": permissions(
        doc(allow(["s3:GetObject", "s3:PutObject"])),
        doc(allow("s3:GetObject"), allow("s3:PutObject")),
        NONE,
        "a list of actions is alternatives, as statements are",
    ),
    "wildcard-matching-no-known-action": permissions(
        doc(allow(G)),
        doc(allow(G), allow("s3:NoSuchThing*")),
        NONE,
        "the catalogue knows s3: the pattern names no action",
    ),
    "service-star-and-its-actions": permissions(
        doc(allow("sts:*")),
        doc(allow(["sts:Assume*", "sts:Get*", "sts:Decode*", "sts:Set*", "sts:Tag*"])),
        NONE,
        "every sts action starts with one of these",
    ),
    "condition-per-action": permissions(
        doc(allow(["s3:GetObject", "s3:PutObject"], StringEquals={K: "alice"})),
        doc(allow("s3:GetObject", StringEquals={K: "alice"}), allow("s3:PutObject")),
        WIDENED,
        "PutObject no longer needs alice",
    ),
    # --------------------------------------------------------------------------- principals
    "root-and-account-id": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit({"AWS": ORIGIN})),
        NONE,
        "an account id is its root ARN",
    ),
    "root-to-role": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit({"AWS": ROLE})),
        NARROWED,
        "a user of the account is no longer admitted",
    ),
    "role-to-its-session": trust(
        doc(admit({"AWS": ROLE})),
        doc(admit({"AWS": f"arn:aws:sts::{ORIGIN}:assumed-role/Lambda-Assume-Roles/s1"})),
        CHANGED,
        "other sessions of the role are refused; and a session ARN carries no path, so session s1 of a "
        "role team/Lambda-Assume-Roles is admitted, which the role ARN (path /) never named",
    ),
    "root-to-star": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit("*")),
        WIDENED,
        "any account is admitted",
    ),
    "star-with-principal-account": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit("*", condition=when("StringEquals", "aws:PrincipalAccount", ORIGIN))),
        NONE,
        "* limited to the callers of one account is that account",
    ),
    "star-with-org-id": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit("*", condition=when("StringEquals", "aws:PrincipalOrgID", "o-abc"))),
        CHANGED,
        "callers of the organization gained; of the account outside it lost",
    ),
    "root-with-principal-arn-is-the-role": trust(
        doc(admit({"AWS": ROLE})),
        doc(admit({"AWS": ROOT}, condition=when("ArnEquals", "aws:PrincipalArn", ROLE))),
        NONE,
        "the account's callers whose PrincipalArn is the role: the role's sessions",
    ),
    "root-with-principal-arn": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit({"AWS": ROOT}, condition=when("ArnEquals", "aws:PrincipalArn", ROLE))),
        NARROWED,
        "the textbook hardening: only the role's sessions now",
    ),
    "root-with-principal-type": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit({"AWS": ROOT}, condition=when("StringEquals", "aws:PrincipalType", "AssumedRole"))),
        NARROWED,
        "users of the account are no longer admitted",
    ),
    "service-added": trust(
        doc(admit({"Service": "lambda.amazonaws.com"})),
        doc(admit({"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]})),
        WIDENED,
        "EC2 is admitted too",
    ),
    "service-source-account-removed": trust(
        doc(
            admit(
                {"Service": "lambda.amazonaws.com"},
                condition=when("StringEquals", "aws:SourceAccount", ORIGIN),
            )
        ),
        doc(admit({"Service": "lambda.amazonaws.com"})),
        WIDENED,
        "Lambda acting for another account is admitted again (the confused deputy)",
    ),
    "user-to-root": trust(
        doc(admit({"AWS": f"arn:aws:iam::{ORIGIN}:user/alice"})),
        doc(admit({"AWS": ROOT})),
        WIDENED,
        "every caller of the account is admitted",
    ),
    "aws-star-and-star": trust(
        doc(admit({"AWS": "*"})),
        doc(admit("*")),
        NONE,
        "both spellings admit everyone",
    ),
    "deny-other-accounts-on-root-trust": trust(
        doc(admit({"AWS": ROOT})),
        doc(
            admit({"AWS": ROOT}),
            refuse("*", condition=when("StringNotEquals", "aws:PrincipalAccount", ORIGIN)),
        ),
        NONE,
        "the Deny refuses callers of other accounts, never admitted",
    ),
    "other-account-added": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit({"AWS": [ROOT, OTHER]})),
        WIDENED,
        "callers of 333... are admitted",
    ),
    "unique-id-principal": trust(
        doc(admit({"AWS": ROLE})),
        doc(admit({"AWS": "AROAEXAMPLEID1234567"})),
        NARROWED,
        "a unique id names a deleted role: nobody is admitted",
    ),
    "federated-instead-of-root": trust(
        doc(admit({"AWS": ROOT}, "sts:AssumeRoleWithWebIdentity")),
        doc(admit({"Federated": "cognito-identity.amazonaws.com"}, "sts:AssumeRoleWithWebIdentity")),
        CHANGED,
        "the account's callers lost, Cognito identities gained",
    ),
    "not-principal-allow": trust(
        doc(admit({"AWS": ROOT})),
        doc({"Effect": "Allow", "NotPrincipal": {"AWS": OTHER}, "Action": "sts:AssumeRole"}),
        WIDENED,
        "everyone but the root of 333... (its users still get in: a NotPrincipal must list them too)",
    ),
    "not-principal-deny": trust(
        doc(admit("*")),
        doc(admit("*"), {"Effect": "Deny", "NotPrincipal": {"AWS": ROOT}, "Action": "sts:AssumeRole"}),
        NARROWED,
        "only the root of 111... itself escapes the Deny; even its users are refused",
    ),
    "role-path-matters": trust(
        doc(admit({"AWS": f"arn:aws:iam::{ORIGIN}:role/team/Builder"})),
        doc(admit({"AWS": f"arn:aws:iam::{ORIGIN}:role/Builder"})),
        CHANGED,
        "a role's ARN includes its path: two different roles",
    ),
    "session-name-condition": trust(
        doc(admit({"AWS": ROLE})),
        doc(admit({"AWS": ROLE}, condition=when("StringLike", "sts:RoleSessionName", "lab-*"))),
        NARROWED,
        "a session not named lab-... is refused now",
    ),
    "external-id-added": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit({"AWS": ROOT}, condition=when("StringEquals", "sts:ExternalId", "secret"))),
        NARROWED,
        "a caller without the external id is refused",
    ),
    "principal-account-like-pattern": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit("*", condition=when("StringLike", "aws:PrincipalAccount", "1111*"))),
        WIDENED,
        "accounts 1111... other than 111111111111 are admitted",
    ),
    "principal-arn-like-any-role": trust(
        doc(admit({"AWS": ROOT})),
        doc(
            admit(
                {"AWS": ROOT}, condition=when("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{ORIGIN}:role/*")
            )
        ),
        NARROWED,
        "the account's users and root are refused; its roles are still in",
    ),
    "principal-is-aws-service": trust(
        doc(admit({"Service": "lambda.amazonaws.com"})),
        doc(admit("*", condition=when("Bool", "aws:PrincipalIsAWSService", "true"))),
        WIDENED,
        "every AWS service is admitted",
    ),
    "principal-service-name": trust(
        doc(admit({"Service": "lambda.amazonaws.com"})),
        doc(admit("*", condition=when("StringEquals", "aws:PrincipalServiceName", "lambda.amazonaws.com"))),
        NONE,
        "* limited to Lambda's service name is Lambda",
    ),
    "trust-extra-action": trust(
        doc(admit({"AWS": ROOT})),
        doc(admit({"AWS": ROOT}, ["sts:AssumeRole", "sts:TagSession"])),
        WIDENED,
        "TagSession is admitted too",
    ),
    "trust-statements-split": trust(
        doc(admit({"AWS": [ROOT, OTHER]})),
        doc(admit({"AWS": ROOT}), admit({"AWS": OTHER})),
        NONE,
        "two principals in one statement or in two",
    ),
    # ------------------------------------------------------------------------ policy variables
    "username-folder-to-everything": permissions(
        doc(allow(G, f"{BUCKET}/home/${{aws:username}}/*")),
        doc(allow(G, f"{BUCKET}/home/*")),
        WIDENED,
        "another user's folder is newly allowed",
    ),
    "username-folder-unchanged-spelling": permissions(
        doc(allow(G, [f"{BUCKET}/home/${{aws:username}}/*", f"{BUCKET}/home/${{aws:username}}/a/*"])),
        doc(allow(G, f"{BUCKET}/home/${{aws:username}}/*")),
        NONE,
        "the second pattern is inside the first, whatever the user",
    ),
    "variable-read-literally-in-2008": permissions(
        doc(allow(G, f"{BUCKET}/home/${{aws:username}}/*")),
        doc(allow(G, f"{BUCKET}/home/${{aws:username}}/*"), version="2008-10-17"),
        CHANGED,
        "2008-10-17 reads ${aws:username} as text: the user's folder lost, the folder named so gained",
    ),
    "variable-in-condition": permissions(
        doc(cond("s3:ListBucket", "StringLike", "s3:prefix", "home/${aws:username}/*")),
        doc(cond("s3:ListBucket", "StringLike", "s3:prefix", "home/*")),
        WIDENED,
        "another user's prefix is newly allowed",
    ),
    "variable-default-added": permissions(
        doc(allow(G, f"{BUCKET}/team/${{aws:PrincipalTag/team}}/*")),
        doc(allow(G, f"{BUCKET}/team/${{aws:PrincipalTag/team, 'none'}}/*")),
        WIDENED,
        "a caller without the tag reads team/none now",
    ),
    "variable-escape-star": permissions(
        doc(allow(G, f"{BUCKET}/${{*}}")),
        doc(allow(G, f"{BUCKET}/*")),
        WIDENED,
        "${*} is a literal star: only the object named * was allowed",
    ),
    "variable-matched-by-condition": permissions(
        doc(allow(G, f"{BUCKET}/home/alice/*")),
        doc(allow(G, f"{BUCKET}/home/${{aws:username}}/*", StringEquals={K: "alice"})),
        NARROWED,
        "only alice herself may now read her folder (the value of one key, consistent in one request)",
    ),
    "variable-consistent-in-one-request": permissions(
        doc(allow(G, f"{BUCKET}/home/${{aws:username}}/*", StringEquals={K: "alice"})),
        doc(allow(G, f"{BUCKET}/home/alice/*", StringEquals={K: "alice"})),
        NONE,
        "with the user fixed to alice, her folder is the only one either allows",
    ),
    # ------------------------------------------------------------------------- whole policies
    "statement-added": permissions(
        doc(allow(G)),
        doc(allow(G), allow("s3:PutObject")),
        WIDENED,
        "PutObject is newly allowed",
    ),
    "statement-removed": permissions(
        doc(allow(G), allow("s3:PutObject")),
        doc(allow(G)),
        NARROWED,
        "PutObject is no longer allowed",
    ),
    "duplicate-statement": permissions(
        doc(allow(G)),
        doc(allow(G), allow(G)),
        NONE,
        "a duplicate adds nothing",
    ),
    "sid-and-order": permissions(
        doc({**allow(G), "Sid": "A"}, allow("s3:PutObject")),
        doc(allow("s3:PutObject"), {**allow(G), "Sid": "B"}),
        NONE,
        "order and Sid mean nothing",
    ),
    "empty-condition": permissions(
        doc(allow(G)),
        doc({**allow(G), "Condition": {}}),
        NONE,
        "an empty condition always holds",
    ),
    "everything-to-nothing": permissions(
        doc(allow("*")),
        doc(deny("*")),
        NARROWED,
        "nothing is allowed any more",
    ),
    "condition-moved-to-other-statement": permissions(
        doc(cond(G, "Bool", "aws:SecureTransport", "true"), allow("s3:PutObject")),
        doc(allow(G), cond("s3:PutObject", "Bool", "aws:SecureTransport", "true")),
        CHANGED,
        "GetObject over plain HTTP gained, PutObject over plain HTTP lost",
    ),
    "allow-with-unknown-key-added-statement": permissions(
        doc(allow(G, f"{BUCKET}/*")),
        doc(allow(G, f"{BUCKET}/*"), allow(G, "*", StringEquals={"aws:PrincipalTag/admin": "yes"})),
        WIDENED,
        "an admin-tagged caller may read any object",
    ),
    "conditions-cover-everything-together": permissions(
        doc(allow(G)),
        doc(
            cond(G, "Bool", "aws:SecureTransport", "true"),
            cond(G, "BoolIfExists", "aws:SecureTransport", "false"),
        ),
        NONE,
        "true, or false or absent: every request",
    ),
}


# The pairs test what IAM decides, not how fast: a generous limit keeps a loaded machine from
# turning a decision into "undecided". The time limit has its own tests and benchmark.
PAIR_TIME_LIMIT = 60.0
ENGINE = PolicyEngine(PAIR_TIME_LIMIT)


def compared(pair: Pair) -> PolicyDiff:
    expected, actual = parse_policy(pair.expected), parse_policy(pair.actual)
    if pair.trust:
        return compare_trust(
            ENGINE, expected, actual, role_arn=f"arn:aws:iam::{DESTINATION}:role/LambdaS3ListBuckets"
        )
    return compare_permissions(ENGINE, [expected], [actual])


def test_there_are_at_least_150_pairs() -> None:
    assert len(PAIRS) >= 150, len(PAIRS)


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
def test_a_pair_has_the_direction_iam_gives_it(pair: Pair) -> None:
    diff = compared(pair)
    assert diff.decided, pair.why
    assert diff.effect is pair.direction, f"{pair.why}: {diff.message}"


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
def test_every_difference_has_a_witness_iam_confirms(pair: Pair) -> None:
    diff = compared(pair)
    witnesses = [w for w in (diff.wider, diff.narrower) if w is not None]
    if pair.direction is NONE:
        assert witnesses == []
        return
    wanted = {Side.ACTUAL} if pair.direction is WIDENED else {Side.EXPECTED}
    if pair.direction is CHANGED:
        wanted = {Side.ACTUAL, Side.EXPECTED}
    assert {w.allowed_by for w in witnesses} == wanted
    expected, actual = parse_policy(pair.expected), parse_policy(pair.actual)
    for witness in witnesses:
        request = witness_request(witness)
        allowing, refusing = (actual, expected) if witness.allowed_by is Side.ACTUAL else (expected, actual)
        assert allows([allowing], request), (pair.why, witness)
        assert not allows([refusing], request), (pair.why, witness)
