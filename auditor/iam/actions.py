"""The actions two policies can tell apart, as a finite set of classes (pure, given the catalogue).

Two actions that every Action/NotAction pattern of the policies matches alike (and that are alike in
being administrative or not) can never be told apart by them, so the solver needs one representative
of each class, not the twenty thousand actions of the catalogue.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from auditor.iam.catalogue import ANY, catalogue, expand_action, glob_regex, has_wildcard, is_administrative
from auditor.iam.patterns import pattern_matches

# The lab's access path, in its order (lab.md's hops): the lab's own actions, the most telling.
ACCESS_PATH = (
    "sts:assumerole",
    "s3:listallmybuckets",
    "logs:putlogevents",
    "logs:createlogstream",
    "logs:createloggroup",
)
# What a grant of everything is told by before anything obscure: administration (who may do what,
# and passing roles to services), then data.
PRIVILEGED = (
    "iam:passrole",
    "iam:createuser",
    "iam:createaccesskey",
    "iam:attachrolepolicy",
    "iam:putrolepolicy",
    "iam:createrole",
    "iam:updateassumerolepolicy",
    "s3:getobject",
    "s3:putobject",
    "s3:deleteobject",
    "s3:listbucket",
    "s3:deletebucket",
    "s3:putbucketpolicy",
)
# Where a representative is taken from when a class holds many actions: familiar services first.
_FAMILIAR = ("s3", "ec2", "iam", "sts", "lambda", "logs", "dynamodb", "kms", "sqs", "sns")
_TELLING = {action: rank for rank, action in enumerate((*ACCESS_PATH, *PRIVILEGED))}


@dataclass(frozen=True)
class ActionClass:
    representative: str  # lower-case
    patterns: frozenset[int]  # indices into ActionUniverse.patterns of the patterns matching it
    administrative: bool


@dataclass(frozen=True)
class ActionUniverse:
    patterns: tuple[str, ...]  # lower-case Action/NotAction patterns, sorted
    classes: tuple[ActionClass, ...]

    def index(self, pattern: str) -> int:
        # The patterns are sorted: a policy of thousands of actions must not cost their square.
        at = bisect_left(self.patterns, pattern)
        if at == len(self.patterns) or self.patterns[at] != pattern:
            raise ValueError(f"{pattern!r} is not a pattern of this universe")
        return at

    def class_of(self, action: str) -> int:
        """The class a concrete action falls in (a catalogue action, or one the policies name)."""
        lowered = action.lower()
        signature = self._signature(lowered)
        administrative = is_administrative(lowered)
        for number, klass in enumerate(self.classes):
            if klass.patterns == signature and klass.administrative == administrative:
                return number
        raise KeyError(action)

    def _signature(self, action: str) -> frozenset[int]:
        return frozenset(
            i
            for i, p in enumerate(self.patterns)
            if p == ANY or action in _members(p) or _literal_match(p, action)
        )


def _literal_match(pattern: str, action: str) -> bool:
    return action not in catalogue().everything and pattern_matches(
        pattern, action, arn_aware=False, variables=False, ignore_case=True
    )


# Process set-up, not answers: a pure function of immutable values and of the action catalogue
# (loaded once), the same in every engine.
@lru_cache(maxsize=8192)
def _members(pattern: str) -> frozenset[str]:
    return expand_action(pattern)


# Process set-up, not answers: a pure function of immutable values and of the action catalogue
# (loaded once), the same in every engine.
@lru_cache(maxsize=512)
def action_universe(patterns: tuple[str, ...], extra_actions: tuple[str, ...] = ()) -> ActionUniverse:
    """The classes of the catalogue's actions (and of `extra_actions`) under these patterns."""
    ordered = tuple(sorted(set(patterns)))
    known = catalogue()
    masks: dict[str, int] = {}
    outside: set[str] = set()  # actions the catalogue does not have, named literally
    for number, pattern in enumerate(ordered):
        if pattern == ANY:
            continue
        for action in _members(pattern):
            masks[action] = masks.get(action, 0) | (1 << number)
            if action not in known.everything:
                outside.add(action)
    for action in extra_actions:
        lowered = action.lower()
        if lowered not in known.everything:
            outside.add(lowered)
    wildcards = [(i, glob_regex(p)) for i, p in enumerate(ordered) if p != ANY and has_wildcard(p)]
    for action in outside:
        # A literal pattern names only itself (already in its mask); only wildcards need matching.
        masks[action] = masks.get(action, 0) | sum(
            1 << i for i, regex in wildcards if regex.fullmatch(action)
        )
    universal = sum(1 << i for i, p in enumerate(ordered) if p == ANY)
    groups: dict[tuple[int, bool], list[str]] = {}
    for action, mask in masks.items():
        groups.setdefault((mask | universal, is_administrative(action)), []).append(action)
    _add_unmatched(groups, known.everything - masks.keys(), universal)
    given = frozenset(ordered)
    classes = tuple(
        ActionClass(_representative(members, given), _bits(mask), administrative)
        for (mask, administrative), members in sorted(groups.items())
    )
    return ActionUniverse(ordered, classes)


def _add_unmatched(
    groups: dict[tuple[int, bool], list[str]], unmatched: Iterable[str], universal: int
) -> None:
    """The catalogue's actions no specific pattern names: one class of them, or two (administrative).
    Every one of them, so that the representative does not depend on the order of a set."""
    for action in unmatched:
        groups.setdefault((universal, is_administrative(action)), []).append(action)


def _bits(mask: int) -> frozenset[int]:
    """The set bits, lowest first, in time of their number (a class has few; the patterns can be many)."""
    bits = []
    while mask:
        lowest = mask & -mask
        bits.append(lowest.bit_length() - 1)
        mask ^= lowest
    return frozenset(bits)


def _representative(members: list[str], given: frozenset[str]) -> str:
    """An action a person recognises: one the policies name (`given`), else the most telling
    (telling_rank)."""
    named = [m for m in members if m in given]
    if named or len(members) < _MANY:
        return min(named or members, key=telling_rank)
    return _most_telling_of_many(frozenset(members))


_MANY = 256  # members past which the ranking is walked service by service, not every member ranked


def _most_telling_of_many(members: frozenset[str]) -> str:
    """min(members, key=telling_rank) without ranking thousands of actions."""
    telling = [action for action in _TELLING if action in members]
    if telling:
        return min(telling, key=telling_rank)
    by_prefix = catalogue().by_prefix
    for prefix in _FAMILIAR:
        familiar = by_prefix.get(prefix, frozenset()) & members
        if familiar:
            return min(familiar)
    return min(members)


def telling_rank(action: str) -> tuple[int, int, str]:
    """The order in which actions tell a difference best, the same in every process: the lab's access
    path, then administration and data (ACCESS_PATH, PRIVILEGED), then familiar services, then the
    rest, each alphabetically."""
    if action in _TELLING:
        return (0, _TELLING[action], action)
    prefix = action.partition(":")[0]
    return (1, _FAMILIAR.index(prefix) if prefix in _FAMILIAR else len(_FAMILIAR), action)


def literal_actions(patterns: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({p for p in patterns if not has_wildcard(p)}))
