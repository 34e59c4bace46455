"""Questions about policies answered by the SMT solver z3, each within a budget (auditor.iam.budget).

- `compare`: which requests one set of statements allows and the other does not, in both
  directions, each with one concrete witness request, checked against `auditor.iam.evaluate`: the
  first of a fixed ranking of candidates the solver confirms (auditor.iam.ranking), so that the same
  question gets the same witness in every process, whatever z3's model.
- `decide`: whether a request of the lab's access path is allowed whatever the values the auditor
  cannot know (works), for none of them (fails), or depending on them (cannot tell).

Each question has its own z3 context: in one reused, z3's work for the same question varies with
what was asked before it, and a budget of work (auditor.iam.budget) would not give the same answer.
Answers are cached by content, so a class of labs with the same documents is decided once per process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from itertools import islice

import structlog
import z3

from auditor.iam.actions import ActionUniverse, action_universe
from auditor.iam.automata import Atom
from auditor.iam.budget import Budget, TimeUp, place, work
from auditor.iam.canonical import Renaming, accounts_in, renaming
from auditor.iam.catalogue import catalogue, never_in_a_request_for
from auditor.iam.conditions import Family, address, epoch_seconds, number, operator
from auditor.iam.document import Policy, Statement, clear_parsed_documents
from auditor.iam.evaluate import Request, allows, assume_role_allowed, identity_allowed
from auditor.iam.explain import Explained, explain, grants_everything
from auditor.iam.memo import Memo
from auditor.iam.patterns import Literal, Token, matches, tokens, variable_keys
from auditor.iam.principals import TIED_KEYS, Kind, Principal, is_account_entry, is_role_entry
from auditor.iam.ranking import (
    NOWHERE,
    Setting,
    fill,
    governed_segments,
    may_allow,
    of_its_action,
    ranked_actions,
    ranked_resources,
    simplest_first,
)
from auditor.iam.symbolic import (
    BOOLEAN_VALUES,
    KINDS,
    RESOURCE,
    CellChoice,
    Encoder,
    Subject,
    Symbols,
    TooComplex,
    ip_text,
)

log = structlog.get_logger()

DEFAULT_TIME_LIMIT = 2.0  # seconds for one comparison or one decision, both directions together
_POLISH_WORK = work(0.25)  # for each attempt to make a witness easier to read
_RANKING_WORK = work(0.5)  # for the ranked search of a telling witness (auditor.iam.ranking), each way
_MAX_CANDIDATES = 48  # questions of that search, each way
_QUICK_TRY = work(0.25)  # for z3's plain core before its default solver takes over
_MAX_EXPLAINED = 6  # candidate sentences the solver checks, each way
_CACHE_SIZE = 4096  # questions of a class of labs (their account ids as placeholders)
_LAB_CACHE_SIZE = 32768  # the same questions as each lab asks them: a few a lab, a thousand labs
_PARTITION = re.compile(r"^arn:(aws[a-z-]*):")
_ACCOUNT = re.compile(r"[0-9]{12}")
_SIMPLE_NAME = re.compile(r"[^:/*? ]+")
_SERVICE = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.amazonaws\.com")
_ACCOUNT_RUN = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")

# A value known but for some of its parts (auditor.iam.patterns' Run and Choice among the tokens).
Shape = tuple[Token, ...]


# ------------------------------------------------------------------------------------------ problem


def _keys_and_families(statements: Iterable[Statement]) -> dict[str, set[Family]]:
    """Every condition key the statements read, and how (a policy variable reads it as a string)."""
    families: dict[str, set[Family]] = {}
    for statement in statements:
        for key, read_as in _statement_keys(statement):
            families.setdefault(key, set()).update(read_as)
    return families


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
        key in TIED_KEYS for key in _keys_and_families(statements) if _read_as_variable(key, statements)
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
    named = {m.group(1) for text in _texts(statements) if (m := _PARTITION.match(text))}
    return tuple(sorted(named)) or ("aws",)


def _texts(statements: Iterable[Statement]) -> Iterable[str]:
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
    ):
        """`extra_atoms`: patterns a question adds on a string subject (what a hop knows of it)."""
        self.ctx = z3.Context()  # its own: z3's work then depends on the question alone (1.5 ms)
        patterns = tuple(sorted({a for s in statements for a in s.actions}))
        self.universe: ActionUniverse = action_universe(patterns, tuple(sorted(set(extra_actions))))
        if budget is not None:
            budget.check()
        self.families = _keys_and_families(statements)
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
        literals = set(_texts(self.statements))
        if not _ACCOUNT.fullmatch(account):
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


def _polished(
    problem: Problem, kept: list[z3.BoolRef], model: z3.ModelRef, budget: Budget, setting: Setting
) -> Request:
    """The request of a model of `kept`, made easier to read where it can be: each preference is tried
    in turn and kept when it fits.

    Each attempt is a fresh solver: z3's push after a satisfiable check can take unbounded time on
    string constraints, outside any timeout.
    """
    chosen_kind = False
    values: dict[str, tuple[str, ...]] = {}
    for preference in problem.preferences(setting):
        if chosen_kind and preference.kind:
            continue
        better = _model(
            problem, [*kept, preference.formula], budget, cap=_POLISH_WORK, missing_is_unknown=False
        )
        if better is not None:
            model, kept = better, [*kept, preference.formula]
            chosen_kind = chosen_kind or preference.kind
            if preference.value is not None:
                values[preference.value[0]] = (preference.value[1],)
    found = problem.request_from(model)
    return replace(found, context={**found.context, **values})


def _model(
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


# ---------------------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Difference:
    """Requests one side allows and the other does not: a witness, none, or undecided in time."""

    witness: Request | None = None
    decided: bool = True

    @property
    def found(self) -> bool:
        return self.witness is not None


@dataclass(frozen=True)
class Comparison:
    wider: Difference  # allowed by actual, not by expected
    narrower: Difference  # allowed by expected, not by actual
    public: bool = False  # a trust that newly admits callers of accounts neither side names, or anyone
    administrative: bool = False  # newly allows an action of IAM's "Permissions management" level
    # What changed, statement by statement, each sentence confirmed by the solver (auditor.iam.explain).
    widened: tuple[str, ...] = ()
    narrowed: tuple[str, ...] = ()
    grants_everything: bool = False  # newly allows whole services or every action on every resource

    @property
    def decided(self) -> bool:
        return self.wider.decided and self.narrower.decided


SAME = Comparison(Difference(), Difference())
_Asked = tuple[frozenset[Statement], frozenset[Statement], bool, Setting]
_comparisons: Memo[_Asked, Comparison] = Memo(_CACHE_SIZE)
_lab_comparisons: Memo[_Asked, Comparison] = Memo(_LAB_CACHE_SIZE)


def compare(
    expected: Sequence[Statement],
    actual: Sequence[Statement],
    *,
    trust: bool,
    time_limit: float = DEFAULT_TIME_LIMIT,
    setting: Setting = NOWHERE,
) -> Comparison:
    """Both directions of containment of the requests each side allows, with witnesses (named, where
    they can be, in the account and with the names of `setting`, auditor.iam.ranking)."""
    if frozenset(expected) == frozenset(actual):
        return SAME
    asked = (frozenset(expected), frozenset(actual), trust, setting)
    return _lab_comparisons.computed(asked, lambda: _compared_for_the_class(asked, time_limit))


def _compared_for_the_class(asked: _Asked, time_limit: float) -> tuple[Comparison, bool]:
    """Compared once for every lab that differs only in its account ids, told with this lab's."""
    expected, actual, trust, setting = asked
    ordered = [*sorted(expected), *sorted(actual)]
    accounts = [*accounts_in(_texts(ordered)), *accounts_in(setting.texts())]
    names = renaming(accounts, ordered, setting.texts())
    key = (
        frozenset(names.statement(s) for s in expected),
        frozenset(names.statement(s) for s in actual),
        trust,
        setting.renamed(names.to_placeholders),
    )
    result = _comparisons.computed(key, lambda: _compared(key, time_limit))
    return _named(result, names), result.decided


def _compared(key: _Asked, time_limit: float) -> tuple[Comparison, bool]:
    """The comparison, and whether to keep it (not when the judgement's shared budget cut it)."""
    expected, actual, trust, setting = key
    with place():
        budget = Budget.of(time_limit)
        try:
            return _compare(_Sides(sorted(expected), sorted(actual), trust, setting), budget), True
        except (TimeUp, TooComplex) as why:
            log.warning("policy_comparison_undecided", reason=str(why) or "time limit", time_limit=time_limit)
            # cut by its own limit, it will be again; by a shared budget, it is worth another try later
            return Comparison(Difference(decided=False), Difference(decided=False)), not budget.cut_by_share


def _named(comparison: Comparison, names: Renaming) -> Comparison:
    """A comparison made on placeholders, told with the lab's own account ids."""
    if names.identity:
        return comparison
    return replace(
        comparison,
        wider=_named_difference(comparison.wider, names),
        narrower=_named_difference(comparison.narrower, names),
        widened=tuple(names.to_names(t) for t in comparison.widened),
        narrowed=tuple(names.to_names(t) for t in comparison.narrowed),
    )


def _named_difference(difference: Difference, names: Renaming) -> Difference:
    found = difference.witness
    if found is None:
        return difference
    principal = found.principal
    if principal is not None:
        principal = replace(
            principal, arn=names.to_names(principal.arn), account=names.to_names(principal.account)
        )
    context = {key: tuple(names.to_names(v) for v in values) for key, values in found.context.items()}
    return Difference(
        Request(found.action, names.to_names(found.resource), principal, context), difference.decided
    )


@dataclass(frozen=True)
class _Sides:
    """The two sides of one comparison, and where their documents apply."""

    expected: list[Statement]
    actual: list[Statement]
    trust: bool
    setting: Setting


@dataclass(frozen=True)
class _Direction:
    """One direction of a comparison: the requests `allowing` allows and `refusing` does not."""

    allowing: list[Statement]
    refusing: list[Statement]
    sides: _Sides

    def checks_out(self, found: Request) -> bool:
        """The referee: the concrete evaluator must agree that one side allows it and the other not."""
        allowing, refusing = Policy(tuple(self.allowing)), Policy(tuple(self.refusing))
        return allows([allowing], found) and not allows([refusing], found)


def _compare(sides: _Sides, budget: Budget) -> Comparison:
    expected, actual, trust = sides.expected, sides.actual, sides.trust
    problem = Problem([*expected, *actual], with_principal=trust, budget=budget)
    encoder = problem.encoder
    allowed_expected, allowed_actual = encoder.allows(expected), encoder.allows(actual)
    budget.check()
    gained = z3.And(allowed_actual, z3.Not(allowed_expected))
    wider = _difference(problem, gained, budget, _Direction(actual, expected, sides))
    lost = z3.And(allowed_expected, z3.Not(allowed_actual))
    narrower = _difference(problem, lost, budget, _Direction(expected, actual, sides))
    public = administrative = False
    if wider.found and trust:
        public = _admits_strangers(problem, gained, expected, actual, budget)
    if wider.found and not trust:
        administrative = _grants_administration(problem, gained, budget)
    candidates_wider, candidates_narrower = explain(expected, actual, trust=trust)
    confirmed_wider = _confirmed(problem, gained, candidates_wider, budget) if wider.found else []
    confirmed_narrower = _confirmed(problem, lost, candidates_narrower, budget) if narrower.found else []
    return Comparison(
        wider,
        narrower,
        public,
        administrative,
        widened=_sentences(confirmed_wider),
        narrowed=_sentences(confirmed_narrower),
        grants_everything=grants_everything(confirmed_wider),
    )


def _confirmed(
    problem: Problem, difference: z3.BoolRef, candidates: list[Explained], budget: Budget
) -> list[Explained]:
    """The explanations inside which the two sides really differ (at most a few are tried)."""
    kept = []
    for candidate in candidates[:_MAX_EXPLAINED]:
        gap = candidate.gap
        region = problem.encoder.region(gap.statement, gap.pattern, gap.resource, gap.principal)
        if _satisfiable(problem, z3.And(difference, region), budget):
            kept.append(candidate)
    return kept


def _sentences(explained: list[Explained]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for e in explained for s in e.sentences))


def _difference(problem: Problem, formula: z3.BoolRef, budget: Budget, direction: _Direction) -> Difference:
    model = _model(problem, [formula], budget)
    if model is None:
        return Difference()
    found = _telling(problem, _Search(problem, formula, model, budget), direction)
    if found is None:  # none of the ranked candidates: the solver's own request, made readable
        setting = direction.sides.setting
        found = _readable(
            _polished(problem, [formula], model, budget, setting), direction.checks_out, setting
        )
    if not direction.checks_out(found):
        log.error("policy_witness_rejected", action=found.action, resource=found.resource)
        return Difference(decided=False)
    return Difference(found)


def _telling(problem: Problem, search: _Search, direction: _Direction) -> Request | None:
    """The first of the ranked candidates (auditor.iam.ranking) inside the difference, or None.

    Candidates that fall in the same action class and resource cell as one already asked are not
    asked again; the search stops after _RANKING_WORK of z3's work, so that it never decides whether
    a comparison is decided in time.
    """
    sides = direction.sides
    actions = ranked_actions(sides.expected, direction.allowing, [*sides.expected, *sides.actual])
    # Lazily, the first few only: a document of thousands of actions would otherwise cost their square.
    possible = islice(
        (action for action in actions if may_allow(direction.allowing, action)), _MAX_CANDIDATES
    )
    classes = {action: problem.class_of(action) for action in possible}
    ranked = [(action, klass) for action, klass in classes.items() if klass is not None]
    distinct = sorted({klass for _, klass in ranked})
    if not distinct:
        return None
    asked_together = search.known_class not in distinct and len(distinct) > 1
    if asked_together and not search.holds(problem.symbols.action_is(distinct)):
        return None  # none of them in the difference: one question instead of one each
    for action, klass in ranked:
        if search.spent():
            break
        found = _telling_for(problem, action, klass, search, direction)
        if found is not None:
            return found
    return None


def _telling_for(
    problem: Problem, action: str, klass: int, search: _Search, direction: _Direction
) -> Request | None:
    """The action's first ranked resource inside the difference (for a trust: the role, unasked)."""
    sides = direction.sides
    pinned = [problem.symbols.action == klass]
    resources = None if sides.trust else ranked_resources(action, sides.setting, sides.expected, sides.actual)
    if resources is None:  # any resource: the class alone decides
        model = search.model_once(("class", klass), pinned)
        return None if model is None else _told(problem, action, None, pinned, model, search, direction)
    subject = problem.symbols.resource
    fresh: dict[Hashable, str] = {}  # one candidate a resource cell, none asked before
    for resource in resources:
        cell: Hashable = ("resource", klass, problem.value_key(subject, resource))
        if cell not in search.asked and may_allow(direction.allowing, action, resource):
            fresh.setdefault(cell, resource)
            if len(fresh) >= _MAX_CANDIDATES:  # as for actions: never the square of a long document
                break
    for index, (asked, resource) in enumerate(fresh.items()):
        if index == 1 and len(fresh) > 2 and not search.holds(*pinned, _any_of(problem, fresh, 1)):
            return None  # the first refused, and none of the rest in the difference: one question
        is_it = [*pinned, problem.is_value(subject, resource)]
        model = search.model_once(asked, is_it)
        found = None if model is None else _told(problem, action, resource, is_it, model, search, direction)
        if found is not None:
            return found
    return None


def _any_of(problem: Problem, candidates: dict[Hashable, str], start: int) -> z3.BoolRef:
    subject = problem.symbols.resource
    return z3.Or(*[problem.is_value(subject, r) for r in list(candidates.values())[start:]])


def _told(
    problem: Problem,
    action: str,
    resource: str | None,
    pinned: list[z3.BoolRef],
    model: z3.ModelRef,
    search: _Search,
    direction: _Direction,
) -> Request | None:
    """The candidate's request, polished and made readable, if IAM's evaluator confirms it."""
    setting = direction.sides.setting
    request = _polished(problem, [search.formula, *pinned], model, search.budget, setting)
    request = replace(request, action=action, resource=resource or request.resource)
    request = _readable(request, direction.checks_out, setting, keep_resource=resource is not None)
    return request if direction.checks_out(request) else None


class _Search:
    """The ranked search's questions: each within a cap of z3's work, each asked once."""

    def __init__(self, problem: Problem, formula: z3.BoolRef, model: z3.ModelRef, budget: Budget) -> None:
        """`model`: the difference's first model, whose action class needs no question."""
        self.problem, self.formula, self.budget = problem, formula, budget
        self.left = _RANKING_WORK
        self.known_class = model.eval(problem.symbols.action, model_completion=True).as_long()
        self.asked: dict[Hashable, z3.ModelRef | None] = {("class", self.known_class): model}

    def spent(self) -> bool:
        return self.left <= 0 or len(self.asked) >= _MAX_CANDIDATES

    def holds(self, *pinned: z3.BoolRef) -> bool:
        return self.model(list(pinned)) is not None

    def model_once(self, key: Hashable, pinned: list[z3.BoolRef]) -> z3.ModelRef | None:
        if key not in self.asked:
            self.asked[key] = None if self.spent() else self.model(pinned)
        return self.asked[key]

    def model(self, pinned: list[z3.BoolRef]) -> z3.ModelRef | None:
        before = self.budget.own.work
        cap = max(1, min(_POLISH_WORK, self.left))
        try:
            return _model(
                self.problem, [self.formula, *pinned], self.budget, cap=cap, missing_is_unknown=False
            )
        finally:
            self.left -= before - self.budget.own.work


def _readable(
    found: Request,
    still_a_witness: Callable[[Request], bool],
    setting: Setting,
    *,
    keep_resource: bool = False,
) -> Request:
    """The witness with a resource and context strings a person can read, where one still does."""
    for resource in () if keep_resource else _resource_candidates(found, setting):
        candidate = replace(found, resource=resource)
        if resource != found.resource and still_a_witness(candidate):
            found = candidate
            break
    for key, values in found.context.items():
        cleaned = tuple(_printable(v) for v in values)
        if cleaned != values:
            candidate = replace(found, context={**found.context, key: cleaned})
            if still_a_witness(candidate):
                found = candidate
    return _what_matters(found, still_a_witness)


def _what_matters(found: Request, still_a_witness: Callable[[Request], bool]) -> Request:
    """The witness without the context keys it is one without (the solver sets keys it need not)."""
    for key in sorted(found.context):
        candidate = replace(found, context={k: v for k, v in found.context.items() if k != key})
        if still_a_witness(candidate):
            found = candidate
    return found


def _resource_candidates(found: Request, setting: Setting) -> list[str]:
    """Readable resources near the solver's own: its ARN's segments with plain names, a resource of a
    type the action acts on (in the solver's account and region, else the governed ones), "*"."""
    resource = found.resource
    if _nice_resource(resource) and of_its_action(found.action, resource):
        return []
    kinds = sorted(catalogue().resource_types.get(found.action, ()), key=simplest_first)
    partition, region, account = governed = governed_segments(setting)
    segments = resource.split(":", 5) if resource.startswith("arn:") else []
    if len(segments) == 6:
        partition, region = segments[1] or partition, segments[3] or region
        account = segments[4] if _ACCOUNT.fullmatch(segments[4]) else account
    shapes = dict.fromkeys([(partition, region, account), governed])
    filled = [fill(kind.arn, shape, {}) for shape in shapes for kind in kinds]
    cleaned = _printable(resource)
    return [*([cleaned + "example"] if cleaned.endswith(("/", ":")) else []), cleaned, *filled, "*"]


def _nice_resource(resource: str) -> bool:
    readable = resource == "*" or (resource.startswith("arn:") and not resource.endswith(("/", ":")))
    return readable and _printable(resource) == resource


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" and c not in "*?" else "x" for c in text) if text != "*" else text


def _admits_strangers(
    problem: Problem,
    gained: z3.BoolRef,
    expected: list[Statement],
    actual: list[Statement],
    budget: Budget,
) -> bool:
    """Whether the wider trust admits a caller from an account that neither document names."""
    caller = problem.symbols.principal
    assert caller is not None
    named = {a for text in _texts([*expected, *actual]) for a in _accounts_in(text)}
    stranger = z3.Or(
        caller.is_kind(Kind.ANONYMOUS),
        z3.And(caller.is_aws(), *[caller.account != problem.symbols.text(a) for a in sorted(named)]),
    )
    return _satisfiable(problem, z3.And(gained, stranger), budget)


def _grants_administration(problem: Problem, gained: z3.BoolRef, budget: Budget) -> bool:
    administrative = [i for i, c in enumerate(problem.universe.classes) if c.administrative]
    if not administrative:
        return False
    return _satisfiable(problem, z3.And(gained, problem.symbols.action_is(administrative)), budget)


def _satisfiable(problem: Problem, formula: z3.BoolRef, budget: Budget) -> bool:
    return _model(problem, [formula], budget) is not None


def _accounts_in(text: str) -> set[str]:
    return set(_ACCOUNT_RUN.findall(text))


# ----------------------------------------------------------------------------------------- decide


class Decision(StrEnum):
    WORKS = "works"
    FAILS = "fails"
    UNKNOWN = "cannot tell"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    unknown_keys: tuple[str, ...] = ()  # the keys whose values it depends on (UNKNOWN)
    in_time: bool = True


@dataclass(frozen=True)
class Hop:
    """One request of the lab's access path, with what the auditor knows of its context.

    `known`: keys AWS sets to these values; `partial`: keys that are present with a value matching a
    StringLike pattern, or of a shape (the User-Agent of the Lambda Python runtime, known but for its
    version numbers); every other key may be absent or hold anything. `resource_pattern`, when set,
    stands for a resource the auditor cannot name exactly (a log stream), any string matching it.
    """

    action: str
    resource: str
    principal: Principal
    known: tuple[tuple[str, tuple[str, ...]], ...] = ()
    partial: tuple[tuple[str, str | Shape], ...] = ()
    resource_pattern: str | None = None
    absent: frozenset[str] = frozenset()  # keys the request is known not to carry

    def request(self) -> Request:
        return Request(self.action.lower(), self.resource, self.principal, dict(self.known))


@dataclass(frozen=True)
class Policies:
    """The documents IAM evaluates for one hop."""

    identity: tuple[Policy, ...] = ()
    boundary: Policy | None = None
    trust: Policy | None = None
    same_account: bool = False
    # True: only the trust policy decides (a service principal such as Lambda assuming a role).
    trust_only: bool = False

    @property
    def statements(self) -> tuple[Statement, ...]:
        policies = [
            *self.identity,
            *([self.boundary] if self.boundary else []),
            *([self.trust] if self.trust else []),
        ]
        return tuple(s for p in policies for s in p.statements)


_decisions: Memo[tuple[Hop, Policies], Verdict] = Memo(_CACHE_SIZE)
_lab_decisions: Memo[tuple[Hop, Policies], Verdict] = Memo(_LAB_CACHE_SIZE)


def decide(hop: Hop, policies: Policies, *, time_limit: float = DEFAULT_TIME_LIMIT) -> Verdict:
    """Whether IAM allows the hop, for every value the auditor cannot know, for none, or it depends."""
    return _lab_decisions.computed((hop, policies), lambda: _decided_for_the_class(hop, policies, time_limit))


def clear_caches() -> None:
    """Forget every answer and parsed document (benchmarks measure the engine cold with it)."""
    for memo in (_comparisons, _lab_comparisons, _decisions, _lab_decisions):
        memo.clear()
    clear_parsed_documents()


def _decided_for_the_class(hop: Hop, policies: Policies, time_limit: float) -> tuple[Verdict, bool]:
    """Decided once for every lab that differs only in its account ids (kept by the lab's own
    documents too: the next audit of the same lab skips the renaming)."""
    hop, policies = _canonical(hop, policies)
    verdict = _decisions.computed((hop, policies), lambda: _decided(hop, policies, time_limit))
    return verdict, verdict.in_time


def _decided(hop: Hop, policies: Policies, time_limit: float) -> tuple[Verdict, bool]:
    """The verdict, and whether to keep it (not when the judgement's shared budget cut it)."""
    unknown = _unknown_keys(hop, policies)
    if not unknown and hop.resource_pattern is None:
        return Verdict(
            Decision.WORKS if _concretely_allowed(hop.request(), policies) else Decision.FAILS
        ), True
    with place():
        budget = Budget.of(time_limit)
        try:
            return _decide(hop, policies, unknown, budget), True
        except (TimeUp, TooComplex):
            return Verdict(Decision.UNKNOWN, unknown, in_time=False), not budget.cut_by_share


def _canonical(hop: Hop, policies: Policies) -> tuple[Hop, Policies]:
    """The hop and its documents with the lab's account ids (and role id) as placeholders, where that
    changes no answer: a class of labs then shares one decision."""
    principal = hop.principal
    hop_texts = [
        hop.resource,
        principal.arn,
        *(v for _, vs in hop.known for v in vs),
        *(p for _, p in hop.partial if isinstance(p, str)),
    ]
    accounts = [principal.account, *accounts_in(hop_texts), *accounts_in(_texts(policies.statements))]
    names = renaming(accounts, policies.statements, hop_texts)
    if names.identity:
        return hop, policies
    rename = names.to_placeholders
    known = tuple(
        (key, tuple(_without_role_id(key, rename(v), policies) for v in values)) for key, values in hop.known
    )
    renamed_hop = replace(
        hop,
        resource=rename(hop.resource),
        principal=replace(principal, arn=rename(principal.arn), account=rename(principal.account)),
        known=known,
        partial=tuple(
            (key, rename(pattern) if isinstance(pattern, str) else pattern) for key, pattern in hop.partial
        ),
        resource_pattern=None if hop.resource_pattern is None else rename(hop.resource_pattern),
    )
    return renamed_hop, _renamed_policies(policies, names)


def _without_role_id(key: str, value: str, policies: Policies) -> str:
    """aws:userid holds the role's unique id, different in every lab; unless a document names it."""
    role_id, colon, session = value.partition(":")
    if key != "aws:userid" or not colon or any(role_id in text for text in _texts(policies.statements)):
        return value
    return f"AROAROLEIDPLACEHOLDER:{session}"


def _renamed_policies(policies: Policies, names: Renaming) -> Policies:
    def renamed(policy: Policy) -> Policy:
        return Policy(tuple(sorted({names.statement(s) for s in policy.statements})), policy.version)

    return replace(
        policies,
        identity=tuple(renamed(p) for p in policies.identity),
        boundary=None if policies.boundary is None else renamed(policies.boundary),
        trust=None if policies.trust is None else renamed(policies.trust),
    )


def _concretely_allowed(req: Request, policies: Policies) -> bool:
    if policies.trust_only:
        assert policies.trust is not None
        return allows([policies.trust], req)
    if policies.trust is not None:
        return assume_role_allowed(
            req, policies.identity, policies.boundary, policies.trust, same_account=policies.same_account
        )
    return identity_allowed(req, policies.identity, policies.boundary)


def _unknown_keys(hop: Hop, policies: Policies) -> tuple[str, ...]:
    """Condition keys the documents read whose values the hop does not fix."""
    fixed = {key for key, _ in hop.known} | set(TIED_KEYS) | _absent(hop, policies)
    read = _keys_and_families(policies.statements)
    return tuple(sorted(key for key in read if key not in fixed))


def _absent(hop: Hop, policies: Policies) -> frozenset[str]:
    """Keys the request does not carry: those the hop knows of, and a service's own keys that a
    request for this action never has."""
    read = _keys_and_families(policies.statements)
    families = tuple(key for key in hop.absent if key.endswith("/"))
    return frozenset(
        key
        for key in read
        if key in hop.absent or key.startswith(families) or never_in_a_request_for(hop.action, key)
    )


def _decide(hop: Hop, policies: Policies, unknown: tuple[str, ...], budget: Budget) -> Verdict:
    problem = Problem(
        list(policies.statements),
        with_principal=True,
        extra_actions=(hop.action.lower(),),
        extra_atoms=_hop_atoms(hop),
        budget=budget,
    )
    allowed = _decision_formula(problem.encoder, policies)
    facts = [
        *_facts(problem, hop),
        *(z3.Not(problem.symbols.present(k)) for k in sorted(_absent(hop, policies))),
    ]
    budget.check()
    working = _model(problem, [allowed, *facts], budget)
    failing = _model(problem, [z3.Not(allowed), *facts], budget)
    if working is not None and failing is None:
        return Verdict(Decision.WORKS)
    if failing is not None and working is None:
        return Verdict(Decision.FAILS)
    if working is None or failing is None:
        return Verdict(Decision.FAILS)  # no request at all: the facts contradict each other
    return Verdict(Decision.UNKNOWN, _deciding_keys(problem, unknown, working, failing))


def _deciding_keys(
    problem: Problem, unknown: tuple[str, ...], working: z3.ModelRef, failing: z3.ModelRef
) -> tuple[str, ...]:
    """The unknown keys whose values differ between a request that gets through and one that does not."""
    request_working, request_failing = problem.request_from(working), problem.request_from(failing)
    differing = tuple(
        key for key in unknown if request_working.context.get(key) != request_failing.context.get(key)
    )
    return differing or unknown


def _decision_formula(encoder: Encoder, policies: Policies) -> z3.BoolRef:
    """IAM's decision over the hop's documents (mirrors auditor.iam.evaluate)."""
    ctx = encoder.ctx
    if policies.trust_only:
        assert policies.trust is not None
        return encoder.allows(policies.trust.statements)
    identity = [s for p in policies.identity for s in p.statements]
    boundary = policies.boundary.statements if policies.boundary else ()
    within_boundary = encoder.allows(boundary) if policies.boundary else z3.BoolVal(True, ctx)
    own = z3.And(encoder.allows(identity), within_boundary)
    if policies.trust is None:
        return own
    trust = policies.trust.statements
    denied = z3.Or(encoder.denied(identity), encoder.denied(boundary), encoder.denied(trust))
    granted = encoder.granted(trust)
    if not policies.same_account:
        return z3.And(z3.Not(denied), granted, own)
    direct_other = encoder.names_caller(trust, lambda e: not is_account_entry(e) and not is_role_entry(e))
    direct_role = encoder.names_caller(trust, is_role_entry)
    return z3.And(z3.Not(denied), granted, z3.Or(own, direct_other, z3.And(direct_role, within_boundary)))


def _facts(problem: Problem, hop: Hop) -> list[z3.BoolRef]:
    """What the auditor knows of the hop's request, as constraints on the symbols."""
    symbols = problem.symbols
    facts = [symbols.action == problem.universe.class_of(hop.action)]
    facts.append(problem.encoder.matches(symbols.resource, _hop_resource(hop).tokens))
    facts += _caller_facts(problem, hop.principal)
    for key, values in hop.known:
        facts += _known_facts(problem, key, values)
    for key, pattern in hop.partial:
        partial = _partial_atom(pattern)
        facts += [symbols.present(key), problem.encoder.matches(symbols.subject(key, 0), partial.tokens)]
    return facts


def _hop_resource(hop: Hop) -> Atom:
    if hop.resource_pattern is None:
        return Atom(tokens(hop.resource, arn_aware=True, variables=False, wildcards=False))
    return Atom(tokens(hop.resource_pattern, arn_aware=True, variables=False))


def _partial_atom(pattern: str | Shape) -> Atom:
    if isinstance(pattern, str):
        return Atom(tokens(pattern, arn_aware=False, variables=False))
    return Atom(pattern)


def _literal_atom(value: str) -> Atom:
    return Atom(tokens(value, arn_aware=False, variables=False, wildcards=False))


def _hop_atoms(hop: Hop) -> dict[str, list[Atom]]:
    """The patterns a hop adds on its string subjects (the resource, known and partial values)."""
    atoms: dict[str, list[Atom]] = {RESOURCE: [_hop_resource(hop)]}
    for key, values in hop.known:
        atoms.setdefault(key, []).extend(_literal_atom(v) for v in values)
    for key, pattern in hop.partial:
        atoms.setdefault(key, []).append(_partial_atom(pattern))
    return atoms


def _caller_facts(problem: Problem, principal: Principal) -> list[z3.BoolRef]:
    caller = problem.symbols.principal
    assert caller is not None
    text = problem.symbols.text
    facts = [caller.is_kind(principal.kind)]
    if principal.kind in (Kind.SERVICE, Kind.WEB_IDENTITY, Kind.CANONICAL_USER):
        return [*facts, caller.other == text(principal.arn)]
    if principal.kind is Kind.ANONYMOUS:
        return facts
    facts += [caller.partition == text(principal.partition), caller.account == text(principal.account)]
    resource_part = principal.arn.split(":", 5)[5]
    if principal.kind in (Kind.USER, Kind.ASSUMED_ROLE):
        path, _, name = resource_part.partition("/")[2].rpartition("/")
        facts += [caller.path == text(f"{path}/" if path else ""), caller.name == text(name)]
    if principal.kind is Kind.ASSUMED_ROLE:
        facts.append(caller.session == text(principal.session))
    if principal.kind is Kind.FEDERATED_USER:
        facts.append(caller.name == text(resource_part.removeprefix("federated-user/")))
    return facts


def _known_facts(problem: Problem, key: str, values: tuple[str, ...]) -> list[z3.BoolRef]:
    symbols = problem.symbols
    facts: list[z3.BoolRef] = [symbols.present(key)]
    slots = symbols.slots(key)
    for family in sorted(problem.families.get(key, set()) or {Family.STRING}):
        for slot in range(slots):
            there = symbols.slot_present(key, slot)
            if slot >= len(values):
                facts.append(z3.Not(there))
                continue
            facts.append(there)
            fact = _equals(problem, key, family, slot, values[slot])
            if fact is not None:
                facts.append(fact)
    return facts


def _equals(problem: Problem, key: str, family: Family, slot: int, value: str) -> z3.BoolRef | None:
    symbols = problem.symbols
    if family is Family.STRING:
        return problem.encoder.matches(symbols.subject(key, slot), _literal_atom(value).tokens)
    variable = symbols.value(key, family, slot)
    if family is Family.IP:
        parsed = address(value)
        if parsed is None:
            return None
        version6 = symbols.ip_versions[key, slot]
        return z3.And(variable == int(parsed), version6 if parsed.version == 6 else z3.Not(version6))
    read = number if family is Family.NUMERIC else epoch_seconds
    parsed_number = read(value)
    if parsed_number is None:
        return None
    return variable == z3.RealVal(repr(parsed_number), problem.ctx)


__all__ = [
    "DEFAULT_TIME_LIMIT",
    "Comparison",
    "Decision",
    "Difference",
    "Hop",
    "Policies",
    "Shape",
    "Verdict",
    "clear_caches",
    "compare",
    "decide",
]
