"""Condition operators as IAM documents them, evaluated on a concrete request context (pure).

- Several values of one key are alternatives; a negated operator (StringNotEquals, NotIpAddress,
  ArnNotLike, ...) holds when the request's value matches none of them.
- A key missing from the request: the positive operators fail, the negated ones hold; `...IfExists`
  holds; `Null` tests exactly that; `ForAnyValue:` fails and `ForAllValues:` holds (an empty set).
- `ForAnyValue:`/`ForAllValues:` quantify over a multi-valued key's values; a single-valued operator
  on several values holds when one of them matches.
- An operator IAM does not know never holds (IAM refuses such a policy; an emulator may not).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache

from auditor.iam.document import Condition
from auditor.iam.patterns import pattern_matches


class Family(StrEnum):
    """How an operator reads a value: the solver keeps one variable of each family a key is used in."""

    STRING = "string"
    NUMERIC = "numeric"
    DATE = "date"
    IP = "ip"


@dataclass(frozen=True)
class Operator:
    name: str  # e.g. "StringLike"
    family: Family
    negated: bool
    qualifier: str  # "", "ForAnyValue" or "ForAllValues"
    if_exists: bool
    wildcards: bool = False  # StringLike, Arn*: * and ? are wildcards
    arn: bool = False  # Arn*: matched segment by segment
    ignore_case: bool = False
    comparison: str = "=="  # Numeric*/Date*: how the request's value compares with the policy's

    @property
    def is_null(self) -> bool:
        return self.name == "Null"


_BASES: dict[str, tuple[Family, bool, dict[str, object]]] = {
    "StringEquals": (Family.STRING, False, {}),
    "StringNotEquals": (Family.STRING, True, {}),
    "StringEqualsIgnoreCase": (Family.STRING, False, {"ignore_case": True}),
    "StringNotEqualsIgnoreCase": (Family.STRING, True, {"ignore_case": True}),
    "StringLike": (Family.STRING, False, {"wildcards": True}),
    "StringNotLike": (Family.STRING, True, {"wildcards": True}),
    "ArnEquals": (Family.STRING, False, {"wildcards": True, "arn": True}),
    "ArnLike": (Family.STRING, False, {"wildcards": True, "arn": True}),
    "ArnNotEquals": (Family.STRING, True, {"wildcards": True, "arn": True}),
    "ArnNotLike": (Family.STRING, True, {"wildcards": True, "arn": True}),
    "Bool": (Family.STRING, False, {"ignore_case": True}),
    "BinaryEquals": (Family.STRING, False, {}),
    "IpAddress": (Family.IP, False, {}),
    "NotIpAddress": (Family.IP, True, {}),
    "NumericEquals": (Family.NUMERIC, False, {}),
    "NumericNotEquals": (Family.NUMERIC, True, {}),
    "NumericLessThan": (Family.NUMERIC, False, {"comparison": "<"}),
    "NumericLessThanEquals": (Family.NUMERIC, False, {"comparison": "<="}),
    "NumericGreaterThan": (Family.NUMERIC, False, {"comparison": ">"}),
    "NumericGreaterThanEquals": (Family.NUMERIC, False, {"comparison": ">="}),
    "DateEquals": (Family.DATE, False, {}),
    "DateNotEquals": (Family.DATE, True, {}),
    "DateLessThan": (Family.DATE, False, {"comparison": "<"}),
    "DateLessThanEquals": (Family.DATE, False, {"comparison": "<="}),
    "DateGreaterThan": (Family.DATE, False, {"comparison": ">"}),
    "DateGreaterThanEquals": (Family.DATE, False, {"comparison": ">="}),
    "Null": (Family.STRING, False, {}),
}
QUALIFIERS = ("", "ForAnyValue", "ForAllValues")


# Process set-up, not answers: a pure function of immutable values, the same in every engine.
@lru_cache(maxsize=1024)
def operator(name: str) -> Operator | None:
    """The operator a condition names; None for one IAM does not know."""
    qualifier, _, rest = name.rpartition(":")
    if qualifier not in QUALIFIERS:
        return None
    if_exists = rest.endswith("IfExists") and rest != "Null"
    base = rest.removesuffix("IfExists") if if_exists else rest
    known = _BASES.get(base)
    if known is None or (base == "Null" and (if_exists or qualifier)):
        return None
    family, negated, options = known
    return Operator(base, family, negated, qualifier, if_exists, **options)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- typed values


def number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def epoch_seconds(text: str) -> float | None:
    """A date as IAM reads it: ISO 8601 (a date, or a date and time with a zone) or epoch seconds."""
    stripped = text.strip()
    if stripped.isdigit():
        return float(stripped)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


# ------------------------------------------------------------------------------------- evaluation

Context = Mapping[str, tuple[str, ...]]


def holds(condition: Condition, context: Context, *, variables: bool = True) -> bool:
    """Whether one condition holds for a request with this context (lower-case keys)."""
    op = operator(condition.operator)
    if op is None:
        return False
    values = context.get(condition.key)
    if op.is_null:
        absent = values is None
        return any((v.lower() == "true") == absent for v in condition.values)
    if values is None:
        return (
            op.if_exists or op.qualifier == "ForAllValues" or (op.negated and op.qualifier != "ForAnyValue")
        )

    def test(value: str) -> bool:
        matched = any(_matches(op, wanted, value, context, variables) for wanted in condition.values)
        return not matched if op.negated else matched

    if op.qualifier == "ForAllValues":
        return all(test(v) for v in values)
    return any(test(v) for v in values)


def _matches(op: Operator, wanted: str, value: str, context: Context, variables: bool) -> bool:
    """Whether the request's value matches one policy value (before negation)."""
    if op.family is Family.STRING:
        return pattern_matches(
            wanted,
            value,
            context,
            arn_aware=op.arn,
            variables=variables,
            wildcards=op.wildcards,
            ignore_case=op.ignore_case,
        )
    if op.family is Family.IP:
        net, addr = network(wanted), address(value)
        return net is not None and addr is not None and addr.version == net.version and addr in net
    read = number if op.family is Family.NUMERIC else epoch_seconds
    have, want = read(value), read(wanted)
    return have is not None and want is not None and _COMPARE[op.comparison](have, want)
