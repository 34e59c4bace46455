"""IAM's string patterns: globs, ARNs matched segment by segment, and policy variables (pure).

A pattern is read into tokens: literal text, `*` (any run), `?` (one character) and `${key}` policy
variables (with an optional default, `${key, 'default'}`; `${*}`, `${?}` and `${$}` stand for those
characters). In an ARN pattern a wildcard in the partition, service, region or account segment
matches within that segment only; the resource part (after the fifth colon, colons and all) is one
glob, as IAM Access Analyzer reads it (lab.md, "Comparing two policies exactly").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

ARN_SEGMENTS = 6  # arn:partition:service:region:account:resource


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class Star:
    in_segment: bool  # True: may not cross a colon (an ARN's first five segments)


@dataclass(frozen=True)
class One:
    in_segment: bool


@dataclass(frozen=True)
class Variable:
    key: str  # lower-case condition key, e.g. "aws:username"
    default: str | None = None


@dataclass(frozen=True)
class Run:
    """One or more characters of a set. Never read from a policy: it describes a value the auditor
    knows the shape of (the User-Agent botocore sends, with its version numbers unknown)."""

    chars: frozenset[str]


@dataclass(frozen=True)
class Choice:
    """One of several sequences of tokens (an empty one makes the choice optional); as Run, a shape."""

    options: tuple[tuple[Token, ...], ...]


Token = Literal | Star | One | Variable | Run | Choice

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}
_DEFAULT = re.compile(r"^\s*([^,]+?)\s*,\s*'(.*)'\s*$", re.DOTALL)


# Process set-up, not answers: a pure function of immutable values, the same in every engine.
@lru_cache(maxsize=16384)
def tokens(pattern: str, *, arn_aware: bool, variables: bool, wildcards: bool = True) -> tuple[Token, ...]:
    """The pattern read into tokens. `wildcards` False: * and ? are plain characters (StringEquals)."""
    pieces = _with_variables(pattern) if variables else [pattern]
    literal_text = "".join(p for p in pieces if isinstance(p, str))
    in_segment = arn_aware and _is_arn_pattern(literal_text)
    colons = 0
    out: list[Token] = []
    for piece in pieces:
        if isinstance(piece, Variable):
            out.append(piece)
            continue
        for char in piece:
            segment_bound = in_segment and colons < ARN_SEGMENTS - 1
            if wildcards and char == "*":
                out.append(Star(segment_bound))
            elif wildcards and char == "?":
                out.append(One(segment_bound))
            else:
                out.append(Literal(char))
                colons += char == ":"
    return _merged(out)


def _with_variables(pattern: str) -> list[str | Variable]:
    pieces: list[str | Variable] = []
    position = 0
    for match in _VARIABLE.finditer(pattern):
        pieces.append(pattern[position : match.start()])
        pieces.append(_variable(match.group(1)))
        position = match.end()
    pieces.append(pattern[position:])
    return pieces


def _variable(inside: str) -> Variable:
    match = _DEFAULT.match(inside)
    if match:
        return Variable(match.group(1).strip().lower(), match.group(2))
    return Variable(inside.strip().lower())


def _is_arn_pattern(pattern: str) -> bool:
    return pattern.startswith("arn:") and pattern.count(":") >= ARN_SEGMENTS - 1


def _merged(items: list[Token]) -> tuple[Token, ...]:
    """Adjacent literal characters joined; `${*}`-style escapes made literal characters."""
    merged: list[Token] = []
    for item in items:
        if isinstance(item, Variable) and item.key in _ESCAPES:
            item = Literal(_ESCAPES[item.key])
        if isinstance(item, Literal) and merged and isinstance(merged[-1], Literal):
            merged[-1] = Literal(merged[-1].text + item.text)
        else:
            merged.append(item)
    return tuple(merged)


def arn_segments(pattern_tokens: tuple[Token, ...]) -> tuple[tuple[Token, ...], ...]:
    """An ARN pattern's six groups of tokens, split at its first five literal colons."""
    groups: list[list[Token]] = [[]]
    for token in pattern_tokens:
        if not isinstance(token, Literal) or len(groups) == ARN_SEGMENTS:
            groups[-1].append(token)
            continue
        pieces = token.text.split(":", ARN_SEGMENTS - len(groups))
        for number, piece in enumerate(pieces):
            if number:
                groups.append([])
            if piece:
                groups[-1].append(Literal(piece))
    while len(groups) < ARN_SEGMENTS:
        groups.append([])
    return tuple(tuple(group) for group in groups)


def has_variables(pattern_tokens: tuple[Token, ...]) -> bool:
    return any(isinstance(t, Variable) for t in pattern_tokens)


def variable_keys(pattern_tokens: tuple[Token, ...]) -> frozenset[str]:
    return frozenset(t.key for t in pattern_tokens if isinstance(t, Variable))


def resolved(
    pattern_tokens: tuple[Token, ...], value_of: Callable[[str], str | None]
) -> tuple[Token, ...] | None:
    """Variables replaced by their values (literal text); None when one has neither value nor default."""
    out: list[Token] = []
    for token in pattern_tokens:
        if isinstance(token, Variable):
            value = value_of(token.key)
            if value is None:
                value = token.default
            if value is None:
                return None
            out.append(Literal(value))
        else:
            out.append(token)
    return tuple(out)


# Process set-up, not answers: a pure function of immutable values, the same in every engine.
@lru_cache(maxsize=16384)
def _compiled(pattern_tokens: tuple[Token, ...], ignore_case: bool) -> re.Pattern[str]:
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(_regex_text(pattern_tokens), flags)


def _regex_text(pattern_tokens: tuple[Token, ...]) -> str:
    parts = []
    for token in pattern_tokens:
        if isinstance(token, Literal):
            parts.append(re.escape(token.text))
        elif isinstance(token, Star):
            parts.append("[^:]*" if token.in_segment else ".*")
        elif isinstance(token, One):
            parts.append("[^:]" if token.in_segment else ".")
        elif isinstance(token, Run):
            parts.append("[" + "".join(re.escape(c) for c in sorted(token.chars)) + "]+")
        elif isinstance(token, Choice):
            parts.append("(?:" + "|".join(_regex_text(option) for option in token.options) + ")")
        else:
            raise ValueError("resolve policy variables before matching")
    return "".join(parts)


def matches(pattern_tokens: tuple[Token, ...], text: str, *, ignore_case: bool = False) -> bool:
    """Whether `text` matches the (variable-free) pattern."""
    return _compiled(pattern_tokens, ignore_case).fullmatch(text) is not None


def pattern_matches(
    pattern: str,
    text: str,
    context: Mapping[str, tuple[str, ...]] | None = None,
    *,
    arn_aware: bool = True,
    variables: bool = True,
    wildcards: bool = True,
    ignore_case: bool = False,
) -> bool:
    """One pattern against one value, policy variables read from the request context."""
    read = tokens(pattern, arn_aware=arn_aware, variables=variables, wildcards=wildcards)
    if has_variables(read):
        values = context or {}
        concrete = resolved(read, lambda key: (values.get(key) or (None,))[0])
        if concrete is None:
            return False
        read = concrete
    return matches(read, text, ignore_case=ignore_case)
