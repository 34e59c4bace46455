"""Building a question about policies for the SMT solver z3: its symbols and encoder (a `Problem`),
the request a model stands for, and the solver's answer within a budget (auditor.iam.budget).

Each question has its own z3 context: in one reused, z3's work for the same question varies with
what was asked before it, and a budget of work (auditor.iam.budget) would not give the same answer.
The questions themselves are auditor.iam.comparing's and auditor.iam.deciding's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from functools import lru_cache

import z3

from auditor.iam.actions import ActionUniverse, action_universe
from auditor.iam.automata import Atom, Found
from auditor.iam.budget import Allowance, Budget, Places, TimeUp, work
from auditor.iam.conditions import Family, operator
from auditor.iam.document import ACCOUNT_ID, Statement
from auditor.iam.evaluate import Request
from auditor.iam.patterns import Literal, matches, tokens, variable_keys
from auditor.iam.principals import TIED_KEYS, Kind, Principal
from auditor.iam.ranking import Setting
from auditor.iam.symbolic import (
    BOOLEAN_VALUES,
    KINDS,
    RESOURCE,
    CellChoice,
    Encoder,
    Subject,
    Symbols,
    ip_text,
)

_QUICK_TRY = work(0.25)  # for z3's plain core before its default solver takes over
_PARTITION = re.compile(r"^arn:(aws[a-z-]*):")
_SIMPLE_NAME = re.compile(r"[^:/*? ]+")
_SERVICE = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.amazonaws\.com")


@dataclass(frozen=True)
class Asking:
    """How an engine asks its questions: each within its time limit, at one of its places on the CPUs,
    within its lab's share when it is part of one lab's judgement, with the cells it found before."""

    time_limit: float
    places: Places
    found: Found
    share: Allowance | None = None

    @contextmanager
    def budget(self) -> Iterator[Budget]:
        """A place to ask the question (the time waited spends none of its budget), and its budget."""
        with self.places.taken():
            yield Budget.of(self.time_limit, self.share)


# ------------------------------------------------------------------------------------------ problem


def keys_and_families(statements: Iterable[Statement]) -> dict[str, set[Family]]:
    """Every condition key the statements read, and how (a policy variable reads it as a string)."""
    families: dict[str, set[Family]] = {}
    for statement in statements:
        for key, read_as in _statement_keys(statement):
            families.setdefault(key, set()).update(read_as)
    return families


# Process set-up, not answers: a pure function of an immutable statement, the same in every engine.
@lru_cache(maxsize=16384)
def _statement_keys(statement: Statement) -> tuple[tuple[str, frozenset[Family]], ...]:
    families: dict[str, set[Family]] = {}
    for condition in statement.conditions:
        op = operator(condition.operator)
        used = families.setdefault(condition.key, set())
        if op is None or op.is_null:
            continue
        used.add(op.family)
        if op.family is Family.STRING and not statement.verbatim:
            for value in condition.values:
                read = tokens(value, arn_aware=op.arn, variables=True, wildcards=op.wildcards)
                for key in variable_keys(read):
                    families.setdefault(key, set()).add(Family.STRING)
    if not statement.verbatim:
        for pattern in statement.resources:
            for key in variable_keys(tokens(pattern, arn_aware=True, variables=True)):
                families.setdefault(key, set()).add(Family.STRING)
    return tuple((key, frozenset(read_as)) for key, read_as in families.items())


def _multi_valued(statements: Iterable[Statement]) -> frozenset[str]:
    return frozenset(
        c.key
        for s in statements
        for c in s.conditions
        if (op := operator(c.operator)) is not None and op.qualifier in ("ForAnyValue", "ForAllValues")
    )


def _string_atoms(
    statements: Sequence[Statement], extra: Mapping[str, Sequence[Atom]], *, tied: bool
) -> dict[str, list[Atom]]:
    """Every pattern each string subject is tested with, for the subjects cells can decide: those
    no pattern with a policy variable tests, and whose value no pattern reads as a variable."""
    atoms: dict[str, list[Atom]] = {RESOURCE: []}
    symbolic: set[str] = set()
    for statement in statements:
        variables = not statement.verbatim
        for pattern in statement.resources:
            _add_atom(atoms, symbolic, RESOURCE, Atom(tokens(pattern, arn_aware=True, variables=variables)))
        for condition in statement.conditions:
            op = operator(condition.operator)
            if op is None or op.is_null or op.family is not Family.STRING:
                continue
            for value in condition.values:
                read = tokens(value, arn_aware=op.arn, variables=variables, wildcards=op.wildcards)
                _add_atom(atoms, symbolic, condition.key, Atom(read, op.ignore_case))
    for subject, added in extra.items():
        for atom in added:
            _add_atom(atoms, symbolic, subject, atom)
    for key in sorted(_boolean_keys(statements)):
        for value in BOOLEAN_VALUES:
            _add_atom(atoms, symbolic, key, Atom((Literal(value),)))
    excluded = symbolic | (set(TIED_KEYS) if tied else set())
    return {subject: found for subject, found in atoms.items() if subject not in excluded}


def _boolean_keys(statements: Iterable[Statement]) -> frozenset[str]:
    """Keys tested with Bool: AWS sets them to "true" or "false", nothing else."""
    return frozenset(
        c.key for s in statements for c in s.conditions if c.operator.rpartition(":")[2].startswith("Bool")
    )


def _add_atom(atoms: dict[str, list[Atom]], symbolic: set[str], subject: str, atom: Atom) -> None:
    keys = variable_keys(atom.tokens)
    if keys:
        symbolic |= {subject, *keys}
    atoms.setdefault(subject, []).append(atom)


def _reads_caller_by_pattern(statements: Iterable[Statement]) -> bool:
    """Whether a condition tests a key of the caller's identity other than by a whole value (a
    wildcard, a policy variable, ignoring case), or a pattern reads such a key as a variable."""
    for statement in statements:
        for condition in statement.conditions:
            op = operator(condition.operator)
            if op is None or condition.key not in TIED_KEYS or op.family is not Family.STRING:
                continue
            if op.ignore_case or any(_is_pattern(v, op.wildcards) for v in condition.values):
                return True
    return any(
        key in TIED_KEYS for key in keys_and_families(statements) if _read_as_variable(key, statements)
    )


def _is_pattern(value: str, wildcards: bool) -> bool:
    return "${" in value or (wildcards and ("*" in value or "?" in value))


def _read_as_variable(key: str, statements: Iterable[Statement]) -> bool:
    texts = [
        *(r for s in statements for r in s.resources),
        *(v for s in statements for c in s.conditions for v in c.values),
    ]
    return any("${" in text and key in text.lower() for text in texts)


def _partitions(statements: Iterable[Statement]) -> tuple[str, ...]:
    """The partitions the documents' ARNs name (the lab's, "aws", when they name none)."""
    named = {m.group(1) for text in texts(statements) if (m := _PARTITION.match(text))}
    return tuple(sorted(named)) or ("aws",)


def texts(statements: Iterable[Statement]) -> Iterable[str]:
    for s in statements:
        yield from s.resources
        yield from s.principals
        for c in s.conditions:
            yield from c.values


class Problem:
    """The symbols and encoder for questions about a set of statements."""

    def __init__(
        self,
        statements: Sequence[Statement],
        *,
        with_principal: bool,
        extra_actions: Sequence[str] = (),
        extra_atoms: Mapping[str, Sequence[Atom]] | None = None,
        budget: Budget | None = None,
        found: Found | None = None,
    ):
        """`extra_atoms`: patterns a question adds on a string subject (what a hop knows of it);
        `found`: the engine's cells already found (auditor.iam.automata)."""
        self.ctx = z3.Context()  # its own: z3's work then depends on the question alone (1.5 ms)
        patterns = tuple(sorted({a for s in statements for a in s.actions}))
        self.universe: ActionUniverse = action_universe(patterns, tuple(sorted(set(extra_actions))))
        if budget is not None:
            budget.check()
        self.families = keys_and_families(statements)
        self.symbols = Symbols(
            self.ctx,
            self.universe,
            multi_valued=_multi_valued(statements),
            with_principal=with_principal,
            partitions=_partitions(statements),
            strict_principal=_reads_caller_by_pattern(statements),
            string_atoms=_string_atoms(statements, extra_atoms or {}, tied=with_principal),
            boolean_keys=_boolean_keys(statements),
            stop_at=budget.stop_at if budget is not None else None,
            found=found,
        )
        self.strict = _reads_caller_by_pattern(statements)
        self.statements = tuple(statements)
        self.encoder = Encoder(self.symbols)

    def solver(self, *formulas: z3.BoolRef, quick: bool = True) -> z3.Solver:
        """`quick`: z3's plain SMT core, which most of these questions suit; else z3's default solver,
        whose preprocessing some string questions need (the two are tried in that order)."""
        solver = z3.SimpleSolver(ctx=self.ctx) if quick else z3.Solver(ctx=self.ctx)
        solver.add(*formulas)
        solver.add(*self.symbols.constraints)  # after the formulas: they create the variables
        return solver

    # ---------------------------------------------------------------------------------- models

    def request_from(self, model: z3.ModelRef) -> Request:
        symbols = self.symbols
        klass = self.universe.classes[model.eval(symbols.action, model_completion=True).as_long()]
        resource = _subject_text(model, symbols.resource)
        principal = self._principal_from(model) if symbols.principal is not None else None
        context: dict[str, tuple[str, ...]] = {}
        for key, families in sorted(self.families.items()):
            if principal is not None and key in TIED_KEYS:
                continue  # the caller sets them
            values = self._values_from(model, key, families)
            if values is not None:
                context[key] = values
        return Request(klass.representative, resource, principal, context)

    def _principal_from(self, model: z3.ModelRef) -> Principal:
        caller = self.symbols.principal
        assert caller is not None
        kind = KINDS[model.eval(caller.kind, model_completion=True).as_long()]
        part = _text(model, caller.partition)
        account, path, name, session, other = (
            _text(model, x) for x in (caller.account, caller.path, caller.name, caller.session, caller.other)
        )
        if not self.strict:
            account, path, name, session, other = self._valid_parts(kind, account, path, name, session, other)
        if kind is Kind.ACCOUNT:
            return Principal(kind, f"arn:{part}:iam::{account}:root", account, part)
        if kind is Kind.USER:
            return Principal(kind, f"arn:{part}:iam::{account}:user/{path}{name}", account, part)
        if kind is Kind.ASSUMED_ROLE:
            return Principal(kind, f"arn:{part}:iam::{account}:role/{path}{name}", account, part, session)
        if kind is Kind.FEDERATED_USER:
            return Principal(kind, f"arn:{part}:sts::{account}:federated-user/{name}", account, part)
        if kind is Kind.ANONYMOUS:
            return Principal(kind, "*")
        return Principal(kind, other)

    def _valid_parts(self, kind: Kind, *parts: str) -> tuple[str, str, str, str, str]:
        """Parts the solver left free made valid: a part that is not of its shape was compared with no
        literal (every literal is of its shape), so any fresh value of the right shape does as well."""
        account, path, name, session, other = parts
        literals = set(texts(self.statements))
        if not ACCOUNT_ID.fullmatch(account):
            account = _fresh(literals, "999999999999", lambda n: f"{999999999999 - n:012d}")
        if path and (not path.endswith("/") or ":" in path):
            path = _fresh(literals, "witness/", lambda n: f"witness{n}/")
        if not _SIMPLE_NAME.fullmatch(name):
            name = _fresh(literals, "witness", lambda n: f"witness{n}")
        if not _SIMPLE_NAME.fullmatch(session):
            session = _fresh(literals, "witness", lambda n: f"witness{n}")
        if kind is Kind.SERVICE and not _SERVICE.fullmatch(other):
            other = _fresh(literals, "witness.amazonaws.com", lambda n: f"witness{n}.amazonaws.com")
        elif not other:
            other = _fresh(literals, "witness", lambda n: f"witness{n}")
        return account, path, name, session, other

    def _values_from(self, model: z3.ModelRef, key: str, families: set[Family]) -> tuple[str, ...] | None:
        symbols = self.symbols
        if not z3.is_true(model.eval(symbols.present(key), model_completion=True)):
            return None
        family = next(
            (f for f in (Family.STRING, Family.NUMERIC, Family.DATE, Family.IP) if f in families), None
        )
        values = []
        for slot in range(symbols.slots(key)):
            if not z3.is_true(model.eval(symbols.slot_present(key, slot), model_completion=True)):
                continue
            if family is None:
                values.append("example")
            else:
                values.append(self._value_text(model, key, family, slot))
        return tuple(dict.fromkeys(values))

    def _value_text(self, model: z3.ModelRef, key: str, family: Family, slot: int) -> str:
        if family is Family.STRING:
            return _subject_text(model, self.symbols.subject(key, slot))
        value = model.eval(self.symbols.value(key, family, slot), model_completion=True)
        if family is Family.IP:
            version6 = self.symbols.ip_versions[key, slot]
            return ip_text(value.as_long(), z3.is_true(model.eval(version6, model_completion=True)))
        fraction = Fraction(value.numerator_as_long(), value.denominator_as_long())
        if family is Family.DATE:
            return _date_text(fraction)
        return str(fraction.numerator) if fraction.denominator == 1 else repr(float(fraction))

    # ------------------------------------------------------------------------------ candidates

    def class_of(self, action: str) -> int | None:
        try:
            return self.universe.class_of(action)
        except KeyError:
            return None

    def is_value(self, subject: Subject, text: str) -> z3.BoolRef:
        """The subject holds exactly this text (for cells: the cell the text falls in)."""
        if not isinstance(subject, CellChoice):
            return subject == self.symbols.text(text)
        cell = _cell_of(subject, text)
        return self.symbols.false() if cell is None else subject.index == cell

    def value_key(self, subject: Subject, text: str) -> int | str | None:
        """What decides whether a text can be the subject's value: its cell, else the text itself."""
        return _cell_of(subject, text) if isinstance(subject, CellChoice) else text

    # ------------------------------------------------------------------------------- polishing

    def preferences(self, setting: Setting) -> list[_Preference]:
        """Constraints that make a witness easier to read, tried one by one, kept when they fit (the
        resource and the context's strings are made readable afterwards, in Python: far cheaper): a
        caller of a familiar kind, the lab's own values of the keys the documents read (its
        User-Agent), whole numbers."""
        wanted: list[_Preference] = []
        caller = self.symbols.principal
        if caller is not None:
            wanted += [
                _Preference(caller.is_kind(k), kind=True)
                for k in (Kind.ACCOUNT, Kind.ASSUMED_ROLE, Kind.SERVICE)
            ]
        for key, value in setting.context:
            if key in self.families and Family.STRING in self.families[key] and not self.symbols.tied(key):
                subject = self.symbols.subject(key, 0)
                chosen = z3.And(self.symbols.slot_present(key, 0), self.is_value(subject, value))
                wanted.append(_Preference(chosen, value=(key, value)))
        for (_key, family, _slot), variable in self.symbols.values.items():
            if family in (Family.NUMERIC, Family.DATE):
                wanted.append(_Preference(z3.IsInt(variable)))
        return wanted


@dataclass(frozen=True)
class _Preference:
    formula: z3.BoolRef
    kind: bool = False  # the caller's kind: one is chosen at most
    value: tuple[str, str] | None = None  # a key's value, shown as is (its cell's example would not be)


def _fresh(literals: set[str], first: str, numbered: Callable[[int], str]) -> str:
    """A value none of the documents uses (searching the service name inside the `service:` form too)."""
    used = literals | {text.partition(":")[2] for text in literals}
    candidate, number = first, 0
    while candidate in used or any(candidate in text for text in literals):
        number += 1
        candidate = numbered(number)
    return candidate


def _cell_of(subject: CellChoice, text: str) -> int | None:
    matched = frozenset(
        index
        for atom, index in subject.atoms.items()
        if matches(atom.tokens, text, ignore_case=atom.ignore_case)
    )
    return next((i for i, cell in enumerate(subject.cells) if cell.matched == matched), None)


def _subject_text(model: z3.ModelRef, subject: Subject) -> str:
    if isinstance(subject, CellChoice):
        return subject.cells[model.eval(subject.index, model_completion=True).as_long()].example
    return _text(model, subject)


def _text(model: z3.ModelRef, variable: z3.SeqRef) -> str:
    return str(model.eval(variable, model_completion=True).as_string())


def _date_text(seconds: Fraction) -> str:
    if seconds.denominator == 1 and 0 <= seconds.numerator < 253402300800:
        return datetime.fromtimestamp(seconds.numerator, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return repr(float(seconds))


# ------------------------------------------------------------------------------------------ answers


def find_model(
    problem: Problem,
    formulas: list[z3.BoolRef],
    budget: Budget,
    *,
    cap: int | None = None,
    missing_is_unknown: bool = True,
) -> z3.ModelRef | None:
    """A model of the formulas, None when there is none; TimeUp when undecided in time (or None, for
    a question that may go unanswered). A quick try first, then z3's default solver."""
    for quick in (True, False):
        limit = min(cap, _QUICK_TRY) if quick and cap is not None else (_QUICK_TRY if quick else cap)
        solver = problem.solver(*formulas, quick=quick)
        try:
            answer = budget.solve(solver, limit)
        except TimeUp:
            break
        if answer == z3.sat:
            return solver.model()
        if answer == z3.unsat:
            return None
    if missing_is_unknown:
        raise TimeUp
    return None


def satisfiable(problem: Problem, formula: z3.BoolRef, budget: Budget) -> bool:
    return find_model(problem, [formula], budget) is not None
