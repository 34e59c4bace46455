"""Wording a policy difference as a person reads it: which statements' grants one side lost or gained.

This is a description of the edit, statement by statement, not a judgement: the exact comparison
(auditor.iam.comparing) decides whether the policies differ and in which direction, and each sentence
offered here is kept only when the solver finds a request inside that statement's grant which the
two sides really treat differently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from auditor.iam.catalogue import ANY, catalogue, display_action, expand_action, has_wildcard
from auditor.iam.document import ACCOUNT_ID, ALLOW, DENY, Condition, Statement, is_unique_id
from auditor.iam.keys import display_key


def _arn_parts(arn: str) -> list[str] | None:
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and ACCOUNT_ID.fullmatch(parts[4]):
        return parts
    return None


def _account_of(principal: str) -> str | None:
    parts = _arn_parts(principal)
    return parts[4] if parts else None


def _is_account_root(principal: str) -> bool:
    parts = _arn_parts(principal)
    return parts is not None and parts[2] == "iam" and parts[5] == "root"


def _principal_contains(outer: str, inner: str) -> bool:
    """Whether every request admitted as `inner` is admitted by `outer`."""
    if outer in (ANY, inner):
        return True
    outer_parts, inner_parts = _arn_parts(outer), _arn_parts(inner)
    if outer_parts is None or inner_parts is None or outer_parts[1] != inner_parts[1]:
        return False
    if _is_account_root(outer):
        return outer_parts[4] == inner_parts[4]
    return _is_session_of(outer_parts, inner_parts)


def _is_session_of(role: list[str], session: list[str]) -> bool:
    """Principal arn:...:role/path/Name admits its sessions arn:...:sts::A:assumed-role/Name/..."""
    if role[2] != "iam" or session[2] != "sts" or role[4] != session[4] or not role[5].startswith("role/"):
        return False
    role_name = role[5].rsplit("/", 1)[-1]
    kind, _, rest = session[5].partition("/")
    return kind == "assumed-role" and rest.partition("/")[0] == role_name


def _principal_overlaps(a: str, b: str) -> bool:
    return _principal_contains(a, b) or _principal_contains(b, a)


def _glob_match(pattern: str, text: str, *, text_is_pattern: bool = False) -> bool:
    """IAM globbing (* any run, ? one character); with text_is_pattern, whether `pattern` contains `text`.

    A greedy matcher that backs up to the last star: O(len(pattern) * len(text)) at worst, never exponential.
    """
    p = t = 0
    star, resume = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, t
            p += 1
        elif p < len(pattern) and _char_matches(pattern[p], text[t], text_is_pattern):
            p += 1
            t += 1
        elif star >= 0:
            p = star + 1
            resume += 1
            t = resume
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _char_matches(pattern_char: str, text_char: str, text_is_pattern: bool) -> bool:
    if pattern_char == "?":
        return not (text_is_pattern and text_char == "*")
    return pattern_char == text_char


def _glob_contains(outer: str, inner: str) -> bool:
    return _glob_match(outer, inner, text_is_pattern=True)


def _globs_overlap(a: str, b: str) -> bool:
    """Whether some string matches both globs."""
    if not has_wildcard(b):
        return _glob_match(a, b)
    if not has_wildcard(a):
        return _glob_match(b, a)
    if _glob_contains(a, b) or _glob_contains(b, a):
        return True
    return _ends_compatible(a, b) and _globs_intersect(a, b)


def _ends_compatible(a: str, b: str) -> bool:
    """A cheap necessary test: the literal heads (before any star) and tails (after any) must agree."""
    head_a, head_b = a.split("*", 1)[0], b.split("*", 1)[0]
    tail_a, tail_b = a.rsplit("*", 1)[-1], b.rsplit("*", 1)[-1]
    heads = zip(head_a, head_b, strict=False)
    tails = zip(reversed(tail_a), reversed(tail_b), strict=False)
    return all(x == y or "?" in (x, y) for x, y in (*heads, *tails))


def _globs_intersect(a: str, b: str) -> bool:
    # below[j]: whether a[i+1:] and b[j:] share a string; rows go from the end of `a` to its start.
    m = len(b)
    below = [False] * (m + 1)
    below[m] = True
    for j in range(m - 1, -1, -1):
        below[j] = b[j] == "*" and below[j + 1]
    for char in reversed(a):
        row = [False] * (m + 1)
        row[m] = char == "*" and below[m]
        for j in range(m - 1, -1, -1):
            if char == "*":
                row[j] = below[j] or row[j + 1]
            elif b[j] == "*":
                row[j] = row[j + 1] or below[j]
            else:
                row[j] = (char == "?" or b[j] == "?" or char == b[j]) and below[j + 1]
        below = row
    return below[0]


# ------------------------------------------------------------------------------------------- scopes


@dataclass(frozen=True)
class _Scope:
    """A statement's resources or principals: its items, or everything except them."""

    items: tuple[str, ...]
    negated: bool = False

    @property
    def broad(self) -> bool:
        return self.negated or any(set(item) == {"*"} for item in self.items)

    def label(self, everything: str) -> str:
        listed = ", ".join(self.items)
        return f"{everything} except {listed}" if self.negated else listed


@dataclass(frozen=True)
class _Kind:
    contains: Callable[[str, str], bool]
    overlaps: Callable[[str, str], bool]


_RESOURCES = _Kind(_glob_contains, _globs_overlap)
_PRINCIPALS = _Kind(_principal_contains, _principal_overlaps)
_EVERYTHING = _Scope((ANY,))


def _resource_scope(statement: Statement) -> _Scope:
    return _Scope(statement.resources, statement.not_resource) if statement.resources else _EVERYTHING


def _principal_scope(statement: Statement) -> _Scope:
    return _Scope(statement.principals, statement.not_principal) if statement.principals else _EVERYTHING


def _split(scope: _Scope) -> Iterator[_Scope]:
    """One scope per item, so that each is judged on its own; a negated scope stays whole."""
    if scope.negated:
        yield scope
    else:
        yield from (_Scope((item,)) for item in scope.items)


def _scope_contains(outer: _Scope, inner: _Scope, kind: _Kind) -> bool:
    if not inner.negated:
        return all(_scope_admits(outer, item, kind) for item in inner.items)
    if outer.negated:
        return all(any(kind.contains(mine, theirs) for mine in inner.items) for theirs in outer.items)
    return any(kind.contains(item, ANY) for item in outer.items)


def _scope_admits(scope: _Scope, item: str, kind: _Kind) -> bool:
    if scope.negated:
        return not any(kind.overlaps(excluded, item) for excluded in scope.items)
    return any(kind.contains(mine, item) for mine in scope.items)


def _scopes_overlap(a: _Scope, b: _Scope, kind: _Kind) -> bool:
    if a.negated and b.negated:
        return True
    if a.negated:
        a, b = b, a
    if b.negated:
        return any(not any(kind.contains(excluded, item) for excluded in b.items) for item in a.items)
    return any(kind.overlaps(x, y) for x in a.items for y in b.items)


def _is_dead(principals: _Scope) -> bool:
    """A unique-id principal admits no one: it names a role or user that no longer exists."""
    return not principals.negated and all(is_unique_id(p) for p in principals.items)


def _names_action(statement: Statement, action: str) -> bool:
    """Whether the statement's Action/NotAction covers `action` (itself possibly a pattern)."""
    if statement.not_action:
        return not any(_globs_overlap(pattern, action) for pattern in statement.actions)
    return any(_glob_contains(pattern, action) for pattern in statement.actions)


# --------------------------------------------------------------------------------------- conditions


def _base_operator(operator: str) -> str:
    return operator.rpartition(":")[2].removesuffix("IfExists")


def _conditions_implied(weaker: Iterable[Condition], stricter: Sequence[Condition]) -> bool:
    """Whether every condition in `weaker` holds whenever all of `stricter` hold."""
    return all(any(_no_stricter(w, s) for s in stricter) for w in weaker)


def _no_stricter(weaker: Condition, stricter: Condition) -> bool:
    same_test = weaker.operator in (stricter.operator, stricter.operator + "IfExists")
    if weaker.key != stricter.key or not same_test:
        return False
    base = _base_operator(stricter.operator)
    if "Not" in base:  # negated operators exclude every value listed: fewer values, fewer exclusions
        return set(weaker.values) <= set(stricter.values)
    if base in ("StringLike", "ArnLike", "ArnEquals"):
        return all(any(_glob_contains(w, s) for w in weaker.values) for s in stricter.values)
    if base == "StringEqualsIgnoreCase":
        return {s.lower() for s in stricter.values} <= {w.lower() for w in weaker.values}
    return set(stricter.values) <= set(weaker.values)


# --------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class _Gap:
    """Grants of one statement that the other side does not cover."""

    action: str
    actions: tuple[str, ...]
    resources: _Scope
    principals: _Scope
    conditions: tuple[Condition, ...]
    # (condition key, whether this side also tests that key) for conditions only the other side asks for.
    condition_changes: tuple[tuple[str, bool], ...]
    broad_action: bool
    # Where the gap comes from, for the solver to confirm it: the statement, the action pattern (None:
    # the statement's NotAction) and the one resource and principal item (None: a negated element).
    statement: Statement
    pattern: str | None
    resource: str | None
    principal: str | None


@dataclass(frozen=True)
class _Comparison:
    gained: tuple[_Gap, ...]  # allowed by actual only
    lost: tuple[_Gap, ...]  # allowed by expected only
    new_denies: tuple[_Gap, ...]  # actual denies what expected allowed
    lost_denies: tuple[_Gap, ...]  # expected denied what actual allows


@dataclass(frozen=True)
class _Grant:
    """One statement's grants to one resource item and one principal item."""

    statement: Statement
    resources: _Scope
    principals: _Scope


@dataclass(frozen=True)
class _ActionGroup:
    """Actions as one statement wrote them: a pattern (None for NotAction) and what it expands to."""

    label: str
    pattern: str | None
    actions: tuple[str, ...]

    @property
    def broad(self) -> bool:
        return self.pattern is None or _is_service_wildcard(self.pattern)


def _compare(expected: Sequence[Statement], actual: Sequence[Statement]) -> _Comparison:
    expected_allows = [s for s in expected if s.effect == ALLOW]
    actual_allows = [s for s in actual if s.effect == ALLOW]
    return _Comparison(
        gained=tuple(_gaps(actual, expected, ALLOW)),
        lost=tuple(_gaps(expected, actual, ALLOW)),
        new_denies=tuple(g for g in _gaps(actual, expected, DENY) if _gap_overlaps(g, expected_allows)),
        lost_denies=tuple(g for g in _gaps(expected, actual, DENY) if _gap_overlaps(g, actual_allows)),
    )


def _gaps(source: Sequence[Statement], target: Sequence[Statement], effect: str) -> Iterator[_Gap]:
    peers = [t for t in target if t.effect == effect]
    # An allow that the same side denies outright grants nothing there.
    blockers = [s for s in source if s.effect == DENY and not s.conditions] if effect == ALLOW else []
    for statement in source:
        if statement.effect != effect or statement in peers:
            continue
        for group in _action_groups(statement):
            for resources in _split(_resource_scope(statement)):
                for principals in _split(_principal_scope(statement)):
                    grant = _Grant(statement, resources, principals)
                    if _is_dead(principals) or _pattern_covered(grant, group, peers):
                        continue
                    missing = next((a for a in group.actions if _uncovered(grant, a, peers, blockers)), None)
                    if missing is not None:
                        yield _gap(grant, group, _condition_changes(grant, missing, peers))


def _action_groups(statement: Statement) -> Iterator[_ActionGroup]:
    if statement.not_action:
        excluded = ", ".join(display_action(a) for a in statement.actions)
        yield _ActionGroup(f"every action except {excluded}", None, _everything_except(statement.actions))
    else:
        for pattern in statement.actions:
            yield _ActionGroup(display_action(pattern), pattern, _sorted_expansion(pattern))


def _pattern_covered(grant: _Grant, group: _ActionGroup, peers: Sequence[Statement]) -> bool:
    """A shortcut: a peer whose own pattern contains the whole written pattern covers all it expands to."""
    return group.pattern is not None and any(_covers(peer, grant, group.pattern) for peer in peers)


def _uncovered(grant: _Grant, action: str, peers: Sequence[Statement], blockers: Sequence[Statement]) -> bool:
    if any(_covers(peer, grant, action) for peer in peers):
        return False
    return not any(_covers(blocker, grant, action) for blocker in blockers)


def _covers(peer: Statement, grant: _Grant, action: str, *, ignore_conditions: bool = False) -> bool:
    return (
        _names_action(peer, action)
        and _scope_contains(_resource_scope(peer), grant.resources, _RESOURCES)
        and _scope_contains(_principal_scope(peer), grant.principals, _PRINCIPALS)
        and (ignore_conditions or _conditions_implied(peer.conditions, grant.statement.conditions))
    )


def _condition_changes(
    grant: _Grant, action: str, peers: Sequence[Statement]
) -> tuple[tuple[str, bool], ...]:
    """When a peer would cover the grant but for its conditions, the conditions that make the difference."""
    own = grant.statement.conditions
    own_keys = {c.key for c in own}
    for peer in peers:
        if _covers(peer, grant, action, ignore_conditions=True):
            differing = [c.key for c in peer.conditions if not _conditions_implied([c], own)]
            return tuple((key, key in own_keys) for key in dict.fromkeys(differing))
    return ()


def _gap(grant: _Grant, group: _ActionGroup, changes: tuple[tuple[str, bool], ...]) -> _Gap:
    return _Gap(
        action=group.label,
        actions=group.actions,
        resources=grant.resources,
        principals=grant.principals,
        conditions=grant.statement.conditions,
        condition_changes=changes,
        broad_action=group.broad,
        statement=grant.statement,
        pattern=group.pattern,
        resource=_single(grant.resources),
        principal=_single(grant.principals),
    )


def _single(scope: _Scope) -> str | None:
    return None if scope.negated or len(scope.items) != 1 else scope.items[0]


def _is_service_wildcard(pattern: str) -> bool:
    prefix, _, name = pattern.partition(":")
    return pattern == ANY or (name == ANY and (prefix == ANY or not has_wildcard(prefix)))


def _gap_overlaps(gap: _Gap, allows: Sequence[Statement]) -> bool:
    return any(
        _scopes_overlap(gap.resources, _resource_scope(allow), _RESOURCES)
        and _scopes_overlap(gap.principals, _principal_scope(allow), _PRINCIPALS)
        and any(_names_action(allow, action) for action in gap.actions)
        for allow in allows
    )


# ------------------------------------------------------------------------------------------ wording


def _allow_sentences(gap: _Gap, *, gained: bool, trust: bool) -> list[str]:
    if gap.condition_changes:
        changes = gap.condition_changes
        return [_condition_sentence(key, had, gap.action, gained=gained) for key, had in changes]
    if trust:
        verb = "admits" if gained else "no longer admits"
        text = f"{verb} {gap.principals.label('everyone')} to {gap.action}"
    else:
        verb = "allows" if gained else "no longer allows"
        text = f"{verb} {gap.action} on {gap.resources.label('every resource')}"
    return [text + _condition_suffix(gap.conditions)]


def _condition_sentence(key: str, had: bool, action: str, *, gained: bool) -> str:
    shown = display_key(key)
    if gained:
        return (
            f"condition {shown} loosened on {action}" if had else f"condition {shown} removed from {action}"
        )
    return f"condition {shown} tightened on {action}" if had else f"condition {shown} added to {action}"


def _deny_sentence(gap: _Gap, *, added: bool, trust: bool) -> str:
    verb = "denies" if added else "no longer denies"
    if trust:
        text = f"{verb} {gap.action} to {gap.principals.label('everyone')}"
    else:
        text = f"{verb} {gap.action} on {gap.resources.label('every resource')}"
    return text + _condition_suffix(gap.conditions)


def _condition_suffix(conditions: tuple[Condition, ...]) -> str:
    if not conditions:
        return ""
    return " under a condition on " + ", ".join(dict.fromkeys(display_key(c.key) for c in conditions))


@dataclass(frozen=True)
class Explained:
    """A gap and the sentences that say it."""

    gap: _Gap
    sentences: tuple[str, ...]


def explain(
    expected: Sequence[Statement], actual: Sequence[Statement], *, trust: bool
) -> tuple[list[Explained], list[Explained]]:
    """Candidate explanations of what actual allows beyond expected, and of what it no longer allows."""
    comparison = _compare(expected, actual)
    widened = [Explained(g, tuple(_allow_sentences(g, gained=True, trust=trust))) for g in comparison.gained]
    widened += [Explained(g, (_deny_sentence(g, added=False, trust=trust),)) for g in comparison.lost_denies]
    narrowed = [Explained(g, tuple(_allow_sentences(g, gained=False, trust=trust))) for g in comparison.lost]
    narrowed += [Explained(g, (_deny_sentence(g, added=True, trust=trust),)) for g in comparison.new_denies]
    return widened, narrowed


def grants_everything(explained: Sequence[Explained]) -> bool:
    """Whole services or every action, on every resource."""
    return any(
        e.gap.broad_action and e.gap.resources.broad for e in explained if e.gap.statement.effect == ALLOW
    )


def admitted_accounts(statements: Iterable[Statement]) -> set[str]:
    principals = {p for s in statements if s.effect == ALLOW and not s.not_principal for p in s.principals}
    return {account for account in map(_account_of, principals) if account is not None}


# Process set-up, not answers: a pure function of immutable values and of the action catalogue
# (loaded once), the same in every engine.
@lru_cache(maxsize=4096)
def _sorted_expansion(pattern: str) -> tuple[str, ...]:
    return tuple(sorted(expand_action(pattern)))


# Process set-up, not answers: a pure function of immutable values and of the action catalogue
# (loaded once), the same in every engine.
@lru_cache(maxsize=256)
def _everything_except(patterns: tuple[str, ...]) -> tuple[str, ...]:
    excluded = frozenset().union(*(expand_action(p) for p in patterns))
    return tuple(sorted(catalogue().everything - excluded))
