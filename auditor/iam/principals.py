"""Who makes a request, how a `Principal`/`NotPrincipal` element matches it, and the context keys
that follow from who it is (pure).

A role session is matched by the role's ARN (path included), by its own session ARN, by its account
(root ARN or 12-digit id) or by "*"; `aws:PrincipalArn` of a role session is the role's ARN. A
`NotPrincipal` element excludes a request only when every identity the request carries is listed:
its account and its user or session ARN (IAM's documented rule; a role ARN there excludes nobody).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from auditor.iam.document import ACCOUNT_ID, ANY, is_unique_id, root_arn

SERVICE_PREFIX, FEDERATED_PREFIX, CANONICAL_PREFIX = "service:", "federated:", "canonical:"


class Kind(StrEnum):
    """The kinds of principal a request can come from; the value is what aws:PrincipalType says."""

    ACCOUNT = "Account"
    USER = "User"
    ASSUMED_ROLE = "AssumedRole"
    FEDERATED_USER = "FederatedUser"
    SERVICE = "Service"
    WEB_IDENTITY = "WebIdentity"
    CANONICAL_USER = "CanonicalUser"
    ANONYMOUS = "Anonymous"


AWS_KINDS = frozenset({Kind.ACCOUNT, Kind.USER, Kind.ASSUMED_ROLE, Kind.FEDERATED_USER})

_ARN = re.compile(r"^arn:([^:]+):(iam|sts)::([0-9]{12}):(.+)$")


@dataclass(frozen=True)
class Principal:
    """A concrete caller.

    `arn`: for IAM principals what IAM puts into aws:PrincipalArn (root, user, role or federated-user
    ARN); for a service, a web identity provider or a canonical user, its name.
    """

    kind: Kind
    arn: str
    account: str = ""
    partition: str = "aws"
    session: str = ""  # an assumed role's session name

    @property
    def session_arn(self) -> str:
        role_name = self.arn.rsplit("/", 1)[-1]
        return f"arn:{self.partition}:sts::{self.account}:assumed-role/{role_name}/{self.session}"

    @property
    def identities(self) -> frozenset[str]:
        """What a NotPrincipal element must list, all of it, to exclude this caller."""
        if self.kind is Kind.ACCOUNT:
            return frozenset({self.arn})
        if self.kind in AWS_KINDS:
            own = self.session_arn if self.kind is Kind.ASSUMED_ROLE else self.arn
            return frozenset({root_arn(self.partition, self.account), own})
        if self.kind is Kind.ANONYMOUS:
            return frozenset({ANY})
        return frozenset({_prefixed(self)})

    def display(self) -> str:
        """How a witness names the caller: one string that parse_principal reads back as this caller."""
        if self.kind is Kind.ASSUMED_ROLE:
            return self.session_arn
        if self.kind in (Kind.WEB_IDENTITY, Kind.CANONICAL_USER):
            return _prefixed(self)  # "accounts.google.com" alone would read as a service
        return self.arn


def _prefixed(principal: Principal) -> str:
    prefix = {Kind.SERVICE: SERVICE_PREFIX, Kind.WEB_IDENTITY: FEDERATED_PREFIX}.get(
        principal.kind, CANONICAL_PREFIX
    )
    return prefix + principal.arn


def parse_principal(text: str, kind: str | None = None, principal_arn: str | None = None) -> Principal:
    """A caller from how a witness or a test names it.

    `kind`: an explicit principal type (Service, WebIdentity, CanonicalUser, Anonymous, ...); without
    it the text decides (an ARN, a 12-digit account, a `service:` name or a name like
    lambda.amazonaws.com). A role session's `principal_arn` gives the role's ARN with its path.
    """
    if kind in (Kind.SERVICE, "Service") or text.startswith(SERVICE_PREFIX):
        return Principal(Kind.SERVICE, text.removeprefix(SERVICE_PREFIX).lower())
    if kind in (Kind.WEB_IDENTITY, "Federated") or text.startswith(FEDERATED_PREFIX):
        return Principal(Kind.WEB_IDENTITY, text.removeprefix(FEDERATED_PREFIX))
    if kind in (Kind.CANONICAL_USER, "CanonicalUser") or text.startswith(CANONICAL_PREFIX):
        return Principal(Kind.CANONICAL_USER, text.removeprefix(CANONICAL_PREFIX))
    if kind in (Kind.ANONYMOUS, "Anonymous") or text == ANY:
        return Principal(Kind.ANONYMOUS, ANY)
    if ACCOUNT_ID.fullmatch(text):
        return Principal(Kind.ACCOUNT, root_arn("aws", text), text)
    match = _ARN.match(text)
    if match is None:
        return Principal(Kind.SERVICE, text.lower()) if "." in text else Principal(Kind.USER, text)
    partition, service, account, rest = match.groups()
    if service == "iam" and rest == "root":
        return Principal(Kind.ACCOUNT, text, account, partition)
    if service == "iam" and rest.startswith("role/"):
        return Principal(Kind.ASSUMED_ROLE, text, account, partition)
    if service == "sts" and rest.startswith("assumed-role/"):
        role_name, _, session = rest.removeprefix("assumed-role/").partition("/")
        role = principal_arn or f"arn:{partition}:iam::{account}:role/{role_name}"
        return Principal(Kind.ASSUMED_ROLE, role, account, partition, session)
    if service == "sts" and rest.startswith("federated-user/"):
        return Principal(Kind.FEDERATED_USER, text, account, partition)
    return Principal(Kind.USER, text, account, partition)


# ------------------------------------------------------------------------------------------- matching


def entry_matches(entry: str, principal: Principal) -> bool:
    """Whether one normalised Principal entry (auditor.iam.document) admits the caller."""
    if entry == ANY:
        return True
    if entry.startswith(SERVICE_PREFIX):
        return principal.kind is Kind.SERVICE and principal.arn == entry.removeprefix(SERVICE_PREFIX)
    if entry.startswith(FEDERATED_PREFIX):
        return principal.kind is Kind.WEB_IDENTITY and principal.arn == entry.removeprefix(FEDERATED_PREFIX)
    if entry.startswith(CANONICAL_PREFIX):
        return principal.kind is Kind.CANONICAL_USER and principal.arn == entry.removeprefix(CANONICAL_PREFIX)
    if is_unique_id(entry) or principal.kind not in AWS_KINDS:
        return False  # a unique id names a role or user that was deleted: it admits no one
    if is_account_entry(entry):
        return entry == root_arn(principal.partition, principal.account)
    if principal.kind is Kind.ASSUMED_ROLE:
        return entry in (principal.arn, principal.session_arn)
    return entry == principal.arn


def is_account_entry(entry: str) -> bool:
    """An account root (`arn:...:iam::<account>:root`): it delegates to the account's own policies."""
    match = _ARN.match(entry)
    return match is not None and match.group(2) == "iam" and match.group(4) == "root"


def is_role_entry(entry: str) -> bool:
    match = _ARN.match(entry)
    return match is not None and match.group(2) == "iam" and match.group(4).startswith("role/")


def not_principal_excludes(entries: tuple[str, ...], principal: Principal) -> bool:
    if ANY in entries:
        return True
    listed = set(entries)
    return all(identity in listed for identity in principal.identities)


def derived_context(principal: Principal) -> dict[str, tuple[str, ...]]:
    """The global condition keys that the caller's identity sets (lower-case keys)."""
    values: dict[str, tuple[str, ...]] = {}
    if principal.kind in AWS_KINDS:
        values["aws:principalarn"] = (principal.arn,)
        values["aws:principalaccount"] = (principal.account,)
        values["aws:principaltype"] = (principal.kind.value,)
    if principal.kind is Kind.USER:
        values["aws:username"] = (principal.arn.rsplit("/", 1)[-1],)
    if principal.kind is Kind.SERVICE:
        values["aws:principalservicename"] = (principal.arn,)
    if principal.kind is not Kind.ANONYMOUS:
        values["aws:principalisawsservice"] = ("true" if principal.kind is Kind.SERVICE else "false",)
    return values


TIED_KEYS = frozenset(
    {
        "aws:principalarn",
        "aws:principalaccount",
        "aws:principaltype",
        "aws:username",
        "aws:principalservicename",
        "aws:principalisawsservice",
    }
)
