"""Which request tells a difference between two documents: the most telling one, the same every time
(pure, given the catalogue).

A difference holds many requests; the solver only has to confirm that one of them is in it. The
candidates come in a fixed order, and the first the solver confirms is the witness:

- actions: for a grant of every action, administration and data first (auditor.iam.actions'
  PRIVILEGED: iam:PassRole, iam:CreateUser, ..., s3:GetObject, ...); then the lab's own actions, those
  the expected document names, in the order of the lab's access path (ACCESS_PATH: sts:AssumeRole,
  s3:ListAllMyBuckets, logs:PutLogEvents, ...); then administration and data; then every other action
  either document names, alphabetically;
- resources, for each action: of a type the action acts on (the Service Authorization Reference's
  resource types; "*" for an action without one, as s3:ListAllMyBuckets), in the account the
  documents govern before any other: the expected document's own resources of that type there; each
  type's ARN format filled with the lab's names (its role, log group, ...) in that account and
  region, then with plain names ("example"); the expected document's own resources elsewhere; the
  formats filled in the partition, region and account each ARN pattern of the documents names; the
  other document's own resources.

Where no candidate is in the difference, the solver's own request is the witness, made readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from auditor.iam.actions import ACCESS_PATH, PRIVILEGED
from auditor.iam.catalogue import ANY, ResourceType, catalogue, has_wildcard
from auditor.iam.document import ALLOW, Statement
from auditor.iam.evaluate import action_matches, resource_matches

PLAIN_NAME = "example"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_ARN_PARTS = 6  # arn:partition:service:region:account:resource


@dataclass(frozen=True)
class Setting:
    """Where the compared documents apply, so that a witness names what the lab would recognise.

    `account`: the account of the role the documents govern; `names`: the lab's own values of ARN
    placeholders (LogGroupName, RoleNameWithPath, ...); `context`: the lab's own values of condition
    keys (lower-case), tried first when a difference reads them.
    """

    account: str = ""
    region: str = ""
    partition: str = "aws"
    names: tuple[tuple[str, str], ...] = ()
    context: tuple[tuple[str, str], ...] = ()

    def texts(self) -> tuple[str, ...]:
        return (self.account, *(v for _, v in self.names), *(v for _, v in self.context))

    def renamed(self, rename: Callable[[str], str]) -> Setting:
        return replace(
            self,
            account=rename(self.account),
            names=tuple((name, rename(value)) for name, value in self.names),
            context=tuple((key, rename(value)) for key, value in self.context),
        )


NOWHERE = Setting()


# ------------------------------------------------------------------------------------------ actions


def ranked_actions(
    expected: Sequence[Statement], allowing: Sequence[Statement], everything: Sequence[Statement]
) -> tuple[str, ...]:
    """The actions to try, most telling first (the module's docstring), lower-case."""
    own = sorted(_literal_actions(expected, allow_only=True), key=_on_the_path_first)
    named = sorted(_literal_actions(everything, allow_only=False))
    first, then = (PRIVILEGED, own) if grants_every_action(allowing) else (own, PRIVILEGED)
    return tuple(dict.fromkeys([*first, *then, *named]))


def _literal_actions(statements: Iterable[Statement], *, allow_only: bool) -> set[str]:
    return {
        action.lower()
        for s in statements
        if not s.not_action and (s.effect == ALLOW or not allow_only)
        for action in s.actions
        if not has_wildcard(action)
    }


def _on_the_path_first(action: str) -> tuple[int, str]:
    return (ACCESS_PATH.index(action) if action in ACCESS_PATH else len(ACCESS_PATH), action)


def grants_every_action(statements: Iterable[Statement]) -> bool:
    """An Allow of `*` or of everything but some actions (NotAction)."""
    return any(s.effect == ALLOW and (s.not_action or ANY in s.actions) for s in statements)


def may_allow(statements: Iterable[Statement], action: str, resource: str | None = None) -> bool:
    """Whether an Allow of the statements could apply to the action (and the resource), whatever the
    context: what a candidate needs to be in the difference, told without asking the solver."""
    return any(
        s.effect == ALLOW and action_matches(s, action) and (resource is None or _may_name(s, resource))
        for s in statements
    )


def _may_name(statement: Statement, resource: str) -> bool:
    if not statement.verbatim and any("${" in pattern for pattern in statement.resources):
        return True  # a policy variable's value is the request's: only the solver can tell
    return resource_matches(statement, resource, {}, variables=False)


# ---------------------------------------------------------------------------------------- resources


def ranked_resources(
    action: str, setting: Setting, expected: Sequence[Statement], other: Sequence[Statement]
) -> tuple[str, ...] | None:
    """The resources to try for the action, most telling first; None for an action the catalogue
    does not know (any resource may be its)."""
    kinds = catalogue().resource_types.get(action)
    if kinds is None:
        return None
    if not kinds:
        return (ANY,)
    kinds = tuple(sorted(kinds, key=simplest_first))
    own, theirs = _resources_of(expected), _resources_of(other)
    governed = governed_segments(setting)
    literal_own = [r for r in own if not has_wildcard(r) and fits_any(r, kinds)]
    literal_theirs = [r for r in theirs if not has_wildcard(r) and fits_any(r, kinds)]
    at_home = [r for r in literal_own if _account_of(r) in ("", governed[2])]
    sources = [governed, *(_segments_named(pattern, governed) for pattern in [*own, *theirs])]
    filled = [
        fill(kind.arn, segments, names)
        for segments in dict.fromkeys(s for s in sources if s is not None)
        for names in (dict(setting.names), {})
        for kind in kinds
    ]
    # The governed account's before another's: a role's policy is told by what it does at home.
    home, away = filled[: 2 * len(kinds)], filled[2 * len(kinds) :]
    return tuple(dict.fromkeys([*at_home, *home, *literal_own, *away, *literal_theirs]))


def _account_of(arn: str) -> str:
    parts = arn.split(":", _ARN_PARTS - 1)
    return parts[4] if len(parts) == _ARN_PARTS else ""


def simplest_first(kind: ResourceType) -> tuple[int, int, str]:
    """An object of a bucket before an object of an access point: fewer placeholders, shorter."""
    return (len(_PLACEHOLDER.findall(kind.arn)), len(kind.arn), kind.name)


def _resources_of(statements: Iterable[Statement]) -> list[str]:
    return list(dict.fromkeys(r for s in statements if not s.not_resource for r in s.resources))


Segments = tuple[str, str, str]  # partition, region, account


def governed_segments(setting: Setting) -> Segments:
    return (setting.partition or "aws", setting.region or DEFAULT_REGION, setting.account or DEFAULT_ACCOUNT)


def _segments_named(pattern: str, governed: Segments) -> Segments | None:
    """The partition, region and account an ARN pattern names (the governed ones where it names none)."""
    parts = pattern.split(":", _ARN_PARTS - 1)
    if len(parts) != _ARN_PARTS or parts[0] != "arn":
        return None
    partition, region, account = (
        part if part and not has_wildcard(part) else default
        for part, default in zip((parts[1], parts[3], parts[4]), governed, strict=True)
    )
    return (partition, region, account)


def fill(arn_format: str, segments: Segments, names: dict[str, str]) -> str:
    """An ARN of the format: the segments given, the lab's names where it has them, else plain ones."""
    partition, region, account = segments
    values = {"Partition": partition, "Region": region, "Account": account, **names}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), PLAIN_NAME), arn_format)


def fits_any(resource: str, kinds: Iterable[ResourceType]) -> bool:
    return any(format_pattern(kind.arn).fullmatch(resource) for kind in kinds)


def of_its_action(action: str, resource: str) -> bool:
    """Whether the resource is of a type the action acts on ("*" for an action without one); any
    resource fits an action the catalogue does not know."""
    kinds = catalogue().resource_types.get(action)
    if kinds is None:
        return True
    return resource == ANY if not kinds else fits_any(resource, kinds)


# Process set-up, not answers: a pure function of immutable values, the same in every engine.
@lru_cache(maxsize=4096)
def format_pattern(arn_format: str) -> re.Pattern[str]:
    """An ARN format as a regular expression: each placeholder a non-empty run without a colon."""
    literal = _PLACEHOLDER.split(arn_format)[::2]
    return re.compile("[^:]+".join(re.escape(part) for part in literal))
