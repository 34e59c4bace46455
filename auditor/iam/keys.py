"""Condition keys as AWS writes them (the engine compares them in lower case)."""

from __future__ import annotations

# The global condition keys as AWS writes them (keys are compared in lower case).
_KEY_NAMES = {
    name.lower(): name
    for name in (
        "aws:CalledVia",
        "aws:CalledViaFirst",
        "aws:CalledViaLast",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:MultiFactorAuthAge",
        "aws:MultiFactorAuthPresent",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalIsAWSService",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName",
        "aws:PrincipalType",
        "aws:RequestedRegion",
        "aws:ResourceAccount",
        "aws:SecureTransport",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceIp",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:SourceIdentity",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:VpcSourceIp",
        "aws:ViaAWSService",
        "aws:ResourceOrgID",
        "aws:ResourceOrgPaths",
        "aws:FederatedProvider",
        "aws:PrincipalServiceNamesList",
        "sts:TransitiveTagKeys",
        "aws:TagKeys",
        "aws:TokenIssueTime",
        "aws:UserAgent",
        "aws:userid",
        "aws:username",
        "lambda:SourceFunctionArn",
        "sts:ExternalId",
        "sts:RoleSessionName",
        "sts:SourceIdentity",
    )
}


_TAG_PREFIXES = {name.lower(): name for name in ("aws:PrincipalTag", "aws:ResourceTag", "aws:RequestTag")}


def display_key(key: str) -> str:
    """A condition key as AWS writes it (keys are compared in lower case; a tag's name keeps the case
    the engine has for it)."""
    prefix, slash, tag = key.partition("/")
    if slash and prefix in _TAG_PREFIXES:
        return f"{_TAG_PREFIXES[prefix]}/{tag}"
    return _KEY_NAMES.get(key, key)
