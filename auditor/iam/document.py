"""IAM policy documents: parse, validate and normalise them into plain values (pure).

Equal values mean the same document up to statement order, Sid, letter case of actions, spelling of
principals, duplicates and formatting (lab.md, "What counts as the same policy").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

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
PRINCIPAL_TYPES = {
    "AWS": "",
    "Service": "service:",
    "Federated": "federated:",
    "CanonicalUser": "canonical:",
}
ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)
_MAX_SHOWN = 60


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
    # A 2008-10-17 document reads "${...}" as plain text, not as a policy variable.
    verbatim: bool = False


@dataclass(frozen=True)
class Policy:
    """A normalised policy: equal values mean the same document up to order, Sid, case and spelling."""

    statements: tuple[Statement, ...]
    # The version only changes how policy variables are read (a statement's `verbatim`); it is kept
    # for display, not compared.
    version: str = field(default=DEFAULT_VERSION, compare=False)

    @property
    def unique_id_principals(self) -> tuple[str, ...]:
        """Principals IAM shows as unique ids because the role or user they named was deleted."""
        return tuple(sorted({p for s in self.statements for p in s.principals if is_unique_id(p)}))


# --------------------------------------------------------------------------------------------- parsing


def parse_policy(doc: str | bytes | Mapping[str, Any]) -> Policy:
    """Parse a policy given as a dict, JSON text or URL-encoded JSON text; raise PolicyError if malformed.

    Each time: the policy engine (auditor.iam.engine) keeps what it parsed, by `content_key`.
    """
    return _parsed(doc)


def content_key(doc: object) -> str | bytes | None:
    """The document's content as one hashable value; None when it is not plain JSON."""
    if isinstance(doc, str | bytes):
        return doc
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        same = json.loads(text) == doc  # e.g. an int key would come back as a string
    except (ValueError, TypeError, RecursionError):
        return None
    return text if same else None  # not plain JSON: parsed (and refused) without the memo


def _parsed(doc: object) -> Policy:
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
    statements = {_statement_from(item, number, version) for number, item in enumerate(raw, 1)}
    return Policy(tuple(sorted(statements)), version)


def _statement_from(raw: object, number: int, version: str = DEFAULT_VERSION) -> Statement:
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
    statement = Statement(
        effect=effect,
        actions=_sorted_set(_action_name(a, where) for a in _strings(actions, where, "Action")),
        not_action=not_action,
        resources=() if resources is None else _sorted_set(_strings(resources, where, "Resource")),
        not_resource=not_resource,
        principals=() if principals is None else _principals_from(principals, where),
        not_principal=not_principal,
        conditions=_conditions_from(raw.get("Condition", {}), where),
    )
    if version != DEFAULT_VERSION and _mentions_variables(statement):
        return replace(statement, verbatim=True)
    return statement


def _mentions_variables(statement: Statement) -> bool:
    texts = [*statement.resources, *(v for c in statement.conditions for v in c.values)]
    return any("${" in text for text in texts)


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
        prefix = PRINCIPAL_TYPES.get(kind) if isinstance(kind, str) else None
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
    if ACCOUNT_ID.fullmatch(name):
        return root_arn("aws", name)
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


def is_unique_id(principal: str) -> bool:
    """A bare unique id such as AROA...: what IAM shows once the role or user a trust named is deleted."""
    return principal != ANY and ":" not in principal


def root_arn(partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:root"


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
        kind, name = principal_type(principal)
        by_type.setdefault(kind, []).append(name)
    return {kind: sorted(by_type[kind]) for kind in sorted(by_type)}


def principal_type(principal: str) -> tuple[str, str]:
    """("AWS" | "Service" | "Federated" | "CanonicalUser", name) of a normalised principal."""
    for kind, prefix in PRINCIPAL_TYPES.items():
        if prefix and principal.startswith(prefix):
            return kind, principal.removeprefix(prefix)
    return "AWS", principal


def _conditions_json(conditions: tuple[Condition, ...]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for condition in conditions:
        out.setdefault(condition.operator, {})[condition.key] = list(condition.values)
    return out
