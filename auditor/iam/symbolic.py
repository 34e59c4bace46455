"""Policies as formulas over one symbolic request, for the SMT solver z3 (as AWS's Zelkova does).

A request is: an action (one class of `auditor.iam.actions`), a resource (a string), a caller (a
kind, partition, account and names, from which its ARNs are built), and a context: for each
condition key a presence flag and one value per family it is used in (a string, a number, a date as
epoch seconds, an IP address with its version), or a few such values for a multi-valued key. The
keys a caller's identity sets (aws:PrincipalArn, aws:PrincipalAccount, ...) are tied to the caller,
so that a condition a statement's principal already implies changes nothing.

Character classes cost z3's string solver dearly, so none is used: a wildcard is any character, and an
ARN pattern with a wildcard in its first five segments is matched against the subject split at its
colons into colon-free segments (a string that starts with "arn:" has all six).

Every formula here mirrors `auditor.iam.evaluate` and `auditor.iam.conditions` rule for rule; the
witnesses the solver finds are checked against those.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import z3

from auditor.iam.actions import ActionUniverse
from auditor.iam.automata import Atom, Cell, Found, TooManyStates, cells
from auditor.iam.conditions import Family, Operator, epoch_seconds, network, number, operator
from auditor.iam.document import ALLOW, ANY, DENY, Statement, is_unique_id
from auditor.iam.patterns import Choice, Literal, One, Run, Star, Token, Variable, arn_segments, tokens
from auditor.iam.principals import (
    AWS_KINDS,
    CANONICAL_PREFIX,
    FEDERATED_PREFIX,
    SERVICE_PREFIX,
    TIED_KEYS,
    Kind,
)

SLOTS = 3  # values of a multi-valued key the solver may use in one request
MAX_VARIABLES = 4  # distinct policy variables in one pattern
KINDS = tuple(Kind)
_ARN_ENTRY = re.compile(r"^arn:([^:]+):(iam|sts)::([0-9]{12}):(.+)$")


class TooComplex(Exception):
    """A policy beyond what the encoding takes on (the comparison is then undecided)."""


def _all(items: Sequence[z3.BoolRef], ctx: z3.Context) -> z3.BoolRef:
    if not items:
        return z3.BoolVal(True, ctx)
    return items[0] if len(items) == 1 else z3.And(*items)


def _any(items: Sequence[z3.BoolRef], ctx: z3.Context) -> z3.BoolRef:
    if not items:
        return z3.BoolVal(False, ctx)
    return items[0] if len(items) == 1 else z3.Or(*items)


def _concat(parts: Sequence[z3.SeqRef]) -> z3.SeqRef:
    return parts[0] if len(parts) == 1 else z3.Concat(*parts)


@dataclass(frozen=True)
class ArnView:
    """A string seen as an ARN: whether it is one, and its segments (the last may hold colons)."""

    is_arn: z3.BoolRef
    segments: tuple[z3.SeqRef, ...]  # partition, service, region, account, resource


@dataclass(frozen=True)
class CellChoice:
    """A string subject as the choice of one of its cells (auditor.iam.automata)."""

    index: z3.ArithRef
    cells: tuple[Cell, ...]
    atoms: Mapping[Atom, int]

    def matches(self, atom: Atom) -> z3.BoolRef:
        number = self.atoms[atom]
        inside = [i for i, cell in enumerate(self.cells) if number in cell.matched]
        return _any([self.index == i for i in inside], self.index.ctx)


# A string subject: its cells, or (when a pattern on it holds a policy variable) a z3 string.
Subject: TypeAlias = CellChoice | z3.SeqRef

RESOURCE = "resource"
BOOLEAN_VALUES = ("true", "false")


class Symbols:
    """The variables of one symbolic request, each made on first use, with what ties them together.

    `string_atoms`: for each string subject ("resource", or a condition key) that is decided by
    cells, every pattern the question tests it with; a subject not listed is a z3 string. `found`: the
    engine's cells already found, where new ones are kept too.
    """

    def __init__(
        self,
        ctx: z3.Context,
        universe: ActionUniverse,
        *,
        multi_valued: frozenset[str] = frozenset(),
        with_principal: bool = False,
        partitions: tuple[str, ...] = ("aws",),
        strict_principal: bool = True,
        string_atoms: Mapping[str, Sequence[Atom]] | None = None,
        boolean_keys: frozenset[str] = frozenset(),
        stop_at: float | None = None,
        found: Found | None = None,
    ) -> None:
        self.ctx, self.universe, self.multi_valued = ctx, universe, multi_valued
        self.boolean_keys = boolean_keys  # keys AWS sets to "true" or "false" only (tested with Bool)
        self._cells = {
            name: self._partition(atoms, stop_at, found) for name, atoms in (string_atoms or {}).items()
        }
        self.subjects: dict[tuple[str, int], Subject] = {}
        self.any_char = z3.AllChar(z3.ReSort(z3.StringSort(ctx)))
        self.constraints: list[z3.BoolRef] = []
        self._arn_views: dict[int, ArnView] = {}
        self.action = z3.Int("action", ctx)
        self.constraints.append(z3.And(self.action >= 0, self.action < len(universe.classes)))
        self.resource = self.subject(RESOURCE, 0)
        self.presence: dict[str, z3.BoolRef] = {}
        self.values: dict[tuple[str, Family, int], z3.ExprRef] = {}
        self.ip_versions: dict[tuple[str, int], z3.BoolRef] = {}
        self.slot_presence: dict[tuple[str, int], z3.BoolRef] = {}
        self.principal = _Caller(self, partitions, strict_principal) if with_principal else None
        self._members: dict[int, z3.BoolRef] = {}
        self._by_pattern: dict[int, list[int]] | None = None

    # ------------------------------------------------------------------------------ variables

    @staticmethod
    def _partition(
        atoms: Sequence[Atom], stop_at: float | None, found: Found | None
    ) -> tuple[tuple[Cell, ...], dict[Atom, int]]:
        distinct = list(dict.fromkeys(atoms))
        try:
            partition = cells(tuple(distinct), stop_at=stop_at, found=found)
            return partition, {atom: i for i, atom in enumerate(distinct)}
        except TooManyStates as error:
            raise TooComplex(str(error)) from None

    def subject(self, name: str, slot: int) -> Subject:
        """The resource's or a condition key's value, as cells or as a z3 string."""
        if (name, slot) not in self.subjects:
            if name in self._cells:
                found, atoms = self._cells[name]
                index = z3.Int(f"cell:{name}:{slot}", self.ctx)
                self.constraints.append(z3.And(index >= 0, index < len(found)))
                self.subjects[name, slot] = CellChoice(index, found, atoms)
            elif name != RESOURCE and self.tied(name):
                assert self.principal is not None
                self.subjects[name, slot] = self.principal.key_value(name)
            else:
                self.subjects[name, slot] = self.string(f"value:{name}:{slot}")
            if name in self.boolean_keys:
                self.constraints.append(self._boolean(self.subjects[name, slot]))
        return self.subjects[name, slot]

    def _boolean(self, subject: Subject) -> z3.BoolRef:
        if isinstance(subject, CellChoice):
            return z3.Or(*(subject.matches(Atom((Literal(v),))) for v in BOOLEAN_VALUES))
        return z3.Or(*(subject == self.text(v) for v in BOOLEAN_VALUES))

    def string(self, name: str) -> z3.SeqRef:
        return z3.String(name, self.ctx)

    def arn_view(self, subject: z3.SeqRef) -> ArnView:
        """`subject` split at its first five colons (made once per subject)."""
        key = subject.get_id()
        if key not in self._arn_views:
            name = f"arn{len(self._arn_views)}"
            segments = tuple(self.string(f"{name}:{i}") for i in range(1, 6))
            colon = self.text(":")
            joined = _concat([self.text("arn"), *(part for segment in segments for part in (colon, segment))])
            is_arn = z3.PrefixOf(self.text("arn:"), subject)
            colon_free = [z3.Not(z3.Contains(segment, colon)) for segment in segments[:4]]
            self.constraints.append(z3.Implies(is_arn, z3.And(subject == joined, *colon_free)))
            self._arn_views[key] = ArnView(is_arn, segments)
        return self._arn_views[key]

    def text(self, value: str) -> z3.SeqRef:
        return z3.StringVal(value, self.ctx)

    def true(self) -> z3.BoolRef:
        return z3.BoolVal(True, self.ctx)

    def false(self) -> z3.BoolRef:
        return z3.BoolVal(False, self.ctx)

    def tied(self, key: str) -> bool:
        return self.principal is not None and key in TIED_KEYS

    def present(self, key: str) -> z3.BoolRef:
        if key not in self.presence:
            if self.tied(key):
                assert self.principal is not None
                self.presence[key] = self.principal.key_present(key)
            else:
                self.presence[key] = z3.Bool(f"present:{key}", self.ctx)
        return self.presence[key]

    def slots(self, key: str) -> int:
        return SLOTS if key in self.multi_valued and not self.tied(key) else 1

    def slot_present(self, key: str, slot: int) -> z3.BoolRef:
        if self.slots(key) == 1:
            return self.present(key)
        if (key, slot) not in self.slot_presence:
            flag = z3.Bool(f"present:{key}:{slot}", self.ctx)
            self.slot_presence[key, slot] = flag
            self.constraints.append(z3.Implies(flag, self.present(key)))
        return self.slot_presence[key, slot]

    def value(self, key: str, family: Family, slot: int = 0) -> z3.ExprRef:
        index = (key, family, slot)
        if index not in self.values:
            self.values[index] = self._new_value(key, family, slot)
        return self.values[index]

    def _new_value(self, key: str, family: Family, slot: int) -> z3.ExprRef:
        name = f"value:{key}:{family.value}:{slot}"
        if family is Family.STRING:
            subject = self.subject(key, slot)
            if isinstance(subject, CellChoice):
                raise TooComplex(f"{key} is read as a policy variable and decided by cells")
            return subject
        if family is Family.IP:
            variable = z3.Int(name, self.ctx)
            version6 = z3.Bool(f"ipv6:{key}:{slot}", self.ctx)
            self.ip_versions[key, slot] = version6
            top = z3.If(version6, z3.IntVal(2**128, self.ctx), z3.IntVal(2**32, self.ctx))
            self.constraints.append(z3.And(variable >= 0, variable < top))
            return variable
        return z3.Real(name, self.ctx)

    # -------------------------------------------------------------------------------- actions

    def member(self, pattern_index: int) -> z3.BoolRef:
        if pattern_index not in self._members:
            count = len(self.universe.classes)
            inside = self._classes_by_pattern().get(pattern_index, [])
            if len(inside) <= count // 2:
                formula = _any([self.action == i for i in inside], self.ctx)
            else:
                outside = sorted(set(range(count)) - set(inside))
                formula = z3.Not(_any([self.action == i for i in outside], self.ctx))
            self._members[pattern_index] = formula
        return self._members[pattern_index]

    def _classes_by_pattern(self) -> dict[int, list[int]]:
        """Each pattern's classes, in one pass (thousands of patterns would make a scan each quadratic)."""
        if self._by_pattern is None:
            self._by_pattern = {}
            for number, action_class in enumerate(self.universe.classes):
                for pattern in action_class.patterns:
                    self._by_pattern.setdefault(pattern, []).append(number)
        return self._by_pattern

    def action_is(self, classes: Iterable[int]) -> z3.BoolRef:
        return _any([self.action == i for i in classes], self.ctx)


class _Caller:
    """The caller: its kind, and the parts its ARNs are made of."""

    def __init__(self, symbols: Symbols, partitions: tuple[str, ...], strict: bool) -> None:
        """`strict`: the parts are constrained to the shapes IAM gives them (twelve digits, names
        without slashes, ...). Without, they are free strings, which the solver decides far faster;
        that is exact when the documents only compare them with whole values (entries, StringEquals),
        and `auditor.iam.question` then gives the parts of a witness valid values of their own."""
        # Not a reference: the symbols hold their caller, and a cycle would keep the question's z3
        # context (16 MB) until the garbage collector's next full pass.
        self.symbols: Symbols = weakref.proxy(symbols)
        ctx, text = symbols.ctx, symbols.text
        self.kind = z3.Int("principal:kind", ctx)
        self.partition = symbols.string("principal:partition")
        self.account = symbols.string("principal:account")
        self.path = symbols.string("principal:path")  # a role's or user's path: "" or "a/b/"
        self.name = symbols.string("principal:name")  # role, user or federated user name
        self.session = symbols.string("principal:session")
        self.other = symbols.string("principal:other")  # a service, web identity provider or canonical id
        symbols.constraints += [
            z3.And(self.kind >= 0, self.kind < len(KINDS)),
            # IAM never lets a caller reach across partitions: the documents' partition is the caller's.
            _any([self.partition == text(p) for p in partitions], ctx),
        ]
        if strict:
            symbols.constraints += self._shapes()

    def _shapes(self) -> list[z3.BoolRef]:
        text = self.symbols.text
        colon, slash = text(":"), text("/")
        return [
            # Twelve digits; a regular expression would cost the solver far more.
            z3.Length(self.account) == 12,
            z3.StrToInt(self.account) >= 0,
            z3.Or(self.path == text(""), z3.SuffixOf(slash, self.path)),
            z3.Not(z3.Contains(self.path, colon)),
            *[_simple_name(x, text) for x in (self.name, self.session)],
            z3.Length(self.other) > 0,
            z3.Implies(
                self.is_kind(Kind.SERVICE),
                z3.And(
                    z3.SuffixOf(text(".amazonaws.com"), self.other), z3.Not(z3.Contains(self.other, slash))
                ),
            ),
        ]

    def is_kind(self, kind: Kind) -> z3.BoolRef:
        return self.kind == KINDS.index(kind)

    def is_aws(self) -> z3.BoolRef:
        return _any([self.is_kind(k) for k in AWS_KINDS], self.symbols.ctx)

    def _arn(self, service: str, rest: Sequence[z3.SeqRef]) -> z3.SeqRef:
        text = self.symbols.text
        return _concat([text("arn:"), self.partition, text(f":{service}::"), self.account, text(":"), *rest])

    @property
    def arn(self) -> z3.SeqRef:
        """What aws:PrincipalArn holds for an IAM caller (a role session: its role's ARN)."""
        text = self.symbols.text
        root = self._arn("iam", [text("root")])
        user = self._arn("iam", [text("user/"), self.path, self.name])
        role = self._arn("iam", [text("role/"), self.path, self.name])
        federated = self._arn("sts", [text("federated-user/"), self.name])
        return z3.If(
            self.is_kind(Kind.ACCOUNT),
            root,
            z3.If(self.is_kind(Kind.USER), user, z3.If(self.is_kind(Kind.ASSUMED_ROLE), role, federated)),
        )

    @property
    def principal_type(self) -> z3.SeqRef:
        text = self.symbols.text
        value: z3.SeqRef = text(Kind.FEDERATED_USER.value)
        for kind in (Kind.ACCOUNT, Kind.USER, Kind.ASSUMED_ROLE):
            value = z3.If(self.is_kind(kind), text(kind.value), value)
        return value

    def key_present(self, key: str) -> z3.BoolRef:
        if key in ("aws:principalarn", "aws:principalaccount", "aws:principaltype"):
            return self.is_aws()
        if key == "aws:username":
            return self.is_kind(Kind.USER)
        if key == "aws:principalservicename":
            return self.is_kind(Kind.SERVICE)
        return z3.Not(self.is_kind(Kind.ANONYMOUS))  # aws:principalisawsservice

    def key_value(self, key: str) -> z3.SeqRef:
        text = self.symbols.text
        values: dict[str, Callable[[], z3.SeqRef]] = {
            "aws:principalarn": lambda: self.arn,
            "aws:principalaccount": lambda: self.account,
            "aws:principaltype": lambda: self.principal_type,
            "aws:username": lambda: self.name,
            "aws:principalservicename": lambda: self.other,
            "aws:principalisawsservice": lambda: z3.If(
                self.is_kind(Kind.SERVICE), text("true"), text("false")
            ),
        }
        return values[key]()

    def key_equals(self, key: str, value: str) -> z3.BoolRef:
        """A tied key's value equals a whole literal value, read through the caller's parts."""
        text, ctx = self.symbols.text, self.symbols.ctx
        if key == "aws:principalarn":
            return self.arn_is(value)
        if key == "aws:principalaccount":
            return self.account == text(value)
        if key == "aws:principaltype":
            kinds = [
                k
                for k in (Kind.ACCOUNT, Kind.USER, Kind.ASSUMED_ROLE, Kind.FEDERATED_USER)
                if k.value == value
            ]
            return _any([self.is_kind(k) for k in kinds], ctx)
        if key in ("aws:username", "aws:principalservicename"):
            return (self.name if key == "aws:username" else self.other) == text(value)
        service = self.is_kind(Kind.SERVICE)  # aws:principalisawsservice
        return service if value == "true" else z3.Not(service) if value == "false" else z3.BoolVal(False, ctx)

    def arn_is(self, arn: str) -> z3.BoolRef:
        """aws:PrincipalArn equals this ARN (a root ARN is the account's own root user, nobody else)."""
        match = _ARN_ENTRY.match(arn)
        if match is None:
            return z3.BoolVal(False, self.symbols.ctx)
        partition, service, account, rest = match.groups()
        if service == "iam" and rest == "root":
            text = self.symbols.text
            return z3.And(
                self.is_kind(Kind.ACCOUNT), self.partition == text(partition), self.account == text(account)
            )
        if service == "sts" and rest.startswith("assumed-role/"):
            return z3.BoolVal(False, self.symbols.ctx)  # a session's PrincipalArn is its role's ARN
        return self.arn_entry(arn)

    # --------------------------------------------------------------------------------- entries

    def entry(self, entry: str) -> z3.BoolRef:
        """Whether one normalised Principal entry admits the caller (auditor.iam.principals.entry_matches)."""
        ctx, text = self.symbols.ctx, self.symbols.text
        if entry == ANY:
            return z3.BoolVal(True, ctx)
        for prefix, kind in (
            (SERVICE_PREFIX, Kind.SERVICE),
            (FEDERATED_PREFIX, Kind.WEB_IDENTITY),
            (CANONICAL_PREFIX, Kind.CANONICAL_USER),
        ):
            if entry.startswith(prefix):
                return z3.And(self.is_kind(kind), self.other == text(entry.removeprefix(prefix)))
        if is_unique_id(entry):
            return z3.BoolVal(False, ctx)
        return self.arn_entry(entry)

    def arn_entry(self, entry: str) -> z3.BoolRef:
        ctx, text = self.symbols.ctx, self.symbols.text
        match = _ARN_ENTRY.match(entry)
        if match is None:
            return z3.BoolVal(False, ctx)
        partition, service, account, rest = match.groups()
        where = z3.And(self.partition == text(partition), self.account == text(account))
        if service == "iam" and rest == "root":
            return z3.And(self.is_aws(), where)
        if service == "iam" and rest.startswith(("role/", "user/")):
            kind = Kind.ASSUMED_ROLE if rest.startswith("role/") else Kind.USER
            path, _, name = rest.partition("/")[2].rpartition("/")
            path = f"{path}/" if path else ""
            return z3.And(self.is_kind(kind), where, self.path == text(path), self.name == text(name))
        if service == "sts" and rest.startswith("assumed-role/"):
            role, _, session = rest.removeprefix("assumed-role/").partition("/")
            return z3.And(
                self.is_kind(Kind.ASSUMED_ROLE), where, self.name == text(role), self.session == text(session)
            )
        if service == "sts" and rest.startswith("federated-user/"):
            name = rest.removeprefix("federated-user/")
            return z3.And(self.is_kind(Kind.FEDERATED_USER), where, self.name == text(name))
        return z3.BoolVal(False, ctx)

    def excluded_by(self, entries: tuple[str, ...]) -> z3.BoolRef:
        """NotPrincipal: every identity of the caller is listed (auditor.iam.principals)."""
        ctx = self.symbols.ctx
        if ANY in entries:
            return z3.BoolVal(True, ctx)
        roots = [e for e in entries if _is_root(e)]
        own = [e for e in entries if not _is_root(e)]
        listed_root = _any([self.arn_entry(e) for e in roots], ctx)
        listed_own = _any([self.entry(e) for e in own if not _is_role(e)], ctx)
        return z3.If(
            self.is_kind(Kind.ACCOUNT),
            listed_root,
            z3.If(self.is_aws(), z3.And(listed_root, listed_own), listed_own),
        )


def _simple_name(name: z3.SeqRef, text: Callable[[str], z3.SeqRef]) -> z3.BoolRef:
    """A role, user or session name: not empty, no slash, no colon, no wildcard."""
    return z3.And(
        z3.Length(name) > 0, *[z3.Not(z3.Contains(name, text(c))) for c in (":", "/", "*", "?", " ")]
    )


def _whole_value(read: tuple[Token, ...]) -> bool:
    """A pattern that is one literal value: no wildcard, no variable."""
    return all(isinstance(t, Literal) for t in read)


def _is_root(entry: str) -> bool:
    match = _ARN_ENTRY.match(entry)
    return match is not None and match.group(2) == "iam" and match.group(4) == "root"


def _is_role(entry: str) -> bool:
    match = _ARN_ENTRY.match(entry)
    return match is not None and match.group(2) == "iam" and match.group(4).startswith("role/")


# ------------------------------------------------------------------------------------- statements


class Encoder:
    """Formulas of statements and policies over one set of symbols."""

    def __init__(self, symbols: Symbols) -> None:
        self.s = symbols
        self.ctx = symbols.ctx

    # ------------------------------------------------------------------------------ patterns

    def _regex(self, read: tuple[Token, ...], ignore_case: bool) -> z3.ReRef:
        """A pattern without variables; segment-bound wildcards are matched against colon-free segments."""
        parts: list[z3.ReRef] = []
        any_char = self.s.any_char
        for token in read:
            if isinstance(token, Literal):
                parts.append(self._literal(token.text, ignore_case))
            elif isinstance(token, Star):
                parts.append(z3.Star(any_char))
            elif isinstance(token, One):
                parts.append(any_char)
            elif isinstance(token, Run):
                parts.append(z3.Plus(self._one_of(token.chars)))
            elif isinstance(token, Choice):
                options = [self._regex(option, ignore_case) for option in token.options]
                parts.append(options[0] if len(options) == 1 else z3.Union(*options))
            else:
                raise ValueError("variables are placed by _with_variables")
        if not parts:
            return z3.Re(z3.StringVal("", self.ctx))
        return parts[0] if len(parts) == 1 else z3.Concat(*parts)

    def _one_of(self, chars: frozenset[str]) -> z3.ReRef:
        """One character of a set, as ranges of consecutive characters (a shape's run)."""
        ranges = [
            z3.Range(low, high, ctx=self.ctx) if low != high else z3.Re(z3.StringVal(low, self.ctx))
            for low, high in _ranges(sorted(chars))
        ]
        return ranges[0] if len(ranges) == 1 else z3.Union(*ranges)

    def _literal(self, text: str, ignore_case: bool) -> z3.ReRef:
        if not ignore_case or text.lower() == text.upper():
            return z3.Re(z3.StringVal(text, self.ctx))
        chars = [
            z3.Union(z3.Re(z3.StringVal(c.lower(), self.ctx)), z3.Re(z3.StringVal(c.upper(), self.ctx)))
            if c.lower() != c.upper()
            else z3.Re(z3.StringVal(c, self.ctx))
            for c in text
        ]
        return chars[0] if len(chars) == 1 else z3.Concat(*chars)

    def matches(self, subject: Subject, read: tuple[Token, ...], *, ignore_case: bool = False) -> z3.BoolRef:
        """`subject` against a pattern whose policy variables are the request's own values."""
        if isinstance(subject, CellChoice):
            return subject.matches(Atom(read, ignore_case))
        if any(isinstance(t, Star | One) and t.in_segment for t in read):
            return self._arn_matches(subject, read, ignore_case)
        return self._flat_matches(subject, read, ignore_case)

    def _arn_matches(self, subject: z3.SeqRef, read: tuple[Token, ...], ignore_case: bool) -> z3.BoolRef:
        """An ARN pattern with a wildcard inside a segment: segment by segment."""
        head, *groups = arn_segments(read)
        if head != (Literal("arn"),):
            return self.s.false()
        view = self.s.arn_view(subject)
        tests = [
            self._flat_matches(part, group, ignore_case)
            for part, group in zip(view.segments, groups, strict=True)
        ]
        return z3.And(view.is_arn, *tests)

    def _flat_matches(self, subject: z3.SeqRef, read: tuple[Token, ...], ignore_case: bool) -> z3.BoolRef:
        variables = [t for t in read if isinstance(t, Variable)]
        if not variables:
            if all(isinstance(t, Literal) for t in read) and not ignore_case:
                return subject == self.s.text("".join(t.text for t in read if isinstance(t, Literal)))
            return z3.InRe(subject, self._regex(read, ignore_case))
        return self._with_variables(subject, read, ignore_case)

    def _with_variables(self, subject: z3.SeqRef, read: tuple[Token, ...], ignore_case: bool) -> z3.BoolRef:
        """A variable stands for the request's value of its key; absent, for its default, or no match."""
        keys = list(dict.fromkeys(t.key for t in read if isinstance(t, Variable)))
        if len(keys) > MAX_VARIABLES:
            raise TooComplex(f"more than {MAX_VARIABLES} policy variables in one pattern")
        cases = []
        for present in itertools.product((True, False), repeat=len(keys)):
            which = dict(zip(keys, present, strict=True))
            parts = self._parts_given(read, which, ignore_case)
            if parts is None:
                continue  # a variable without a value or a default: this pattern matches nothing
            regex = parts[0] if len(parts) == 1 else z3.Concat(*parts)
            flags = [
                self.s.slot_present(k, 0) if there else z3.Not(self.s.slot_present(k, 0))
                for k, there in which.items()
            ]
            cases.append(z3.And(*flags, z3.InRe(subject, regex)))
        return _any(cases, self.ctx)

    def _parts_given(
        self, read: tuple[Token, ...], present: dict[str, bool], ignore_case: bool
    ) -> list[z3.ReRef] | None:
        parts: list[z3.ReRef] = []
        for token in read:
            if not isinstance(token, Variable):
                parts.append(self._regex((token,), ignore_case))
            elif present[token.key]:
                value = self.s.value(token.key, Family.STRING, 0)
                assert isinstance(value, z3.SeqRef)
                parts.append(z3.Re(value))
            elif token.default is not None:
                parts.append(self._literal(token.default, ignore_case))
            else:
                return None
        return parts or [z3.Re(z3.StringVal("", self.ctx))]

    # ------------------------------------------------------------------------------ elements

    def action(self, statement: Statement) -> z3.BoolRef:
        universe = self.s.universe
        named = _any([self.s.member(universe.index(p)) for p in statement.actions], self.ctx)
        return z3.Not(named) if statement.not_action else named

    def resource(self, statement: Statement) -> z3.BoolRef:
        if not statement.resources:
            return self.s.true()
        named = _any(
            [
                self.matches(self.s.resource, tokens(p, arn_aware=True, variables=not statement.verbatim))
                for p in statement.resources
            ],
            self.ctx,
        )
        return z3.Not(named) if statement.not_resource else named

    def principal(self, statement: Statement, entries: Callable[[str], bool] = lambda _: True) -> z3.BoolRef:
        caller = self.s.principal
        if not statement.principals or caller is None:
            return self.s.true()
        if statement.not_principal:
            return z3.Not(caller.excluded_by(statement.principals))
        return _any([caller.entry(e) for e in statement.principals if entries(e)], self.ctx)

    # ---------------------------------------------------------------------------- conditions

    def condition(self, key: str, op_name: str, values: tuple[str, ...], verbatim: bool) -> z3.BoolRef:
        op = operator(op_name)
        if op is None:
            return self.s.false()
        present = self.s.present(key)
        if op.is_null:
            return _any([z3.Not(present) if v.lower() == "true" else present for v in values], self.ctx)
        absent = (
            op.if_exists or op.qualifier == "ForAllValues" or (op.negated and op.qualifier != "ForAnyValue")
        )
        slots = range(self.s.slots(key))
        tests = [(self.s.slot_present(key, i), self._value_test(op, key, i, values, verbatim)) for i in slots]
        if op.qualifier == "ForAllValues":
            body = _all([z3.Implies(there, test) for there, test in tests], self.ctx)
        else:
            body = _any([z3.And(there, test) for there, test in tests], self.ctx)
        return z3.If(present, body, z3.BoolVal(absent, self.ctx))

    def _value_test(
        self, op: Operator, key: str, slot: int, values: tuple[str, ...], verbatim: bool
    ) -> z3.BoolRef:
        # A string is matched through its subject (cells or a z3 string), the other families by value.
        value = self.s.true() if op.family is Family.STRING else self.s.value(key, op.family, slot)
        matched = _any(
            [self._matches_value(op, key, slot, value, wanted, verbatim) for wanted in values], self.ctx
        )
        return z3.Not(matched) if op.negated else matched

    def _matches_value(
        self, op: Operator, key: str, slot: int, value: z3.ExprRef, wanted: str, verbatim: bool
    ) -> z3.BoolRef:
        if op.family is Family.STRING:
            read = tokens(wanted, arn_aware=op.arn, variables=not verbatim, wildcards=op.wildcards)
            caller = self.s.principal
            if caller is not None and self.s.tied(key) and _whole_value(read) and not op.ignore_case:
                return caller.key_equals(key, "".join(t.text for t in read if isinstance(t, Literal)))
            return self.matches(self.s.subject(key, slot), read, ignore_case=op.ignore_case)
        if op.family is Family.IP:
            net = network(wanted)
            if net is None:
                return self.s.false()
            version6 = self.s.ip_versions[key, slot]
            low, high = int(net.network_address), int(net.broadcast_address)
            same_version = version6 if net.version == 6 else z3.Not(version6)
            return z3.And(same_version, value >= low, value <= high)
        parse = number if op.family is Family.NUMERIC else epoch_seconds
        limit = parse(wanted)
        if limit is None:
            return self.s.false()
        bound = z3.RealVal(repr(limit), self.ctx)
        compare: dict[str, Callable[[z3.ArithRef, z3.ArithRef], z3.BoolRef]] = {
            "==": lambda a, b: a == b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        assert isinstance(value, z3.ArithRef)
        return compare[op.comparison](value, bound)

    def conditions(self, statement: Statement) -> z3.BoolRef:
        return _all(
            [self.condition(c.key, c.operator, c.values, statement.verbatim) for c in statement.conditions],
            self.ctx,
        )

    # ---------------------------------------------------------------------------- statements

    def applies(self, statement: Statement, *, principal: z3.BoolRef | None = None) -> z3.BoolRef:
        return z3.And(
            self.action(statement),
            self.resource(statement),
            self.principal(statement) if principal is None else principal,
            self.conditions(statement),
        )

    def allows(self, statements: Sequence[Statement]) -> z3.BoolRef:
        """One kind of policy on its own: an Allow applies and no Deny does."""
        return z3.And(self.granted(statements), z3.Not(self.denied(statements)))

    def granted(self, statements: Sequence[Statement]) -> z3.BoolRef:
        return _any([self.applies(s) for s in statements if s.effect == ALLOW], self.ctx)

    def denied(self, statements: Sequence[Statement]) -> z3.BoolRef:
        return _any([self.applies(s) for s in statements if s.effect == DENY], self.ctx)

    def region(
        self, statement: Statement, pattern: str | None, resource: str | None, principal: str | None
    ) -> z3.BoolRef:
        """The requests one piece of a statement covers: one action pattern (None: all of them), one
        resource item and one principal item (None: the whole element), under its conditions."""
        universe = self.s.universe
        action = self.action(statement) if pattern is None else self.s.member(universe.index(pattern))
        if resource is None or not statement.resources:
            resources = self.resource(statement)
        else:
            resources = self.matches(
                self.s.resource, tokens(resource, arn_aware=True, variables=not statement.verbatim)
            )
        caller = self.s.principal
        if principal is None or caller is None or not statement.principals:
            principals = self.principal(statement)
        else:
            principals = caller.entry(principal)
        return z3.And(action, resources, principals, self.conditions(statement))

    def names_caller(self, trust: Sequence[Statement], entries: Callable[[str], bool]) -> z3.BoolRef:
        """A trust Allow that admits the caller through an entry `entries` accepts (not its account)."""
        direct = []
        for statement in trust:
            if statement.effect != ALLOW:
                continue
            if statement.not_principal:
                direct.append(self.applies(statement))
            else:
                direct.append(self.applies(statement, principal=self.principal(statement, entries)))
        return _any(direct, self.ctx)


# ------------------------------------------------------------------------------------------ values


def _ranges(chars: Sequence[str]) -> list[tuple[str, str]]:
    """Sorted characters as runs of consecutive code points, each (first, last)."""
    found: list[tuple[str, str]] = []
    for char in chars:
        if found and ord(char) == ord(found[-1][1]) + 1:
            found[-1] = (found[-1][0], char)
        else:
            found.append((char, char))
    return found


def ip_text(value: int, version6: bool) -> str:
    return str(ipaddress.IPv6Address(value) if version6 else ipaddress.IPv4Address(value))
