"""Comparing two sets of statements: which requests one allows and the other does not, in both
directions, each with one concrete witness request, checked against `auditor.iam.evaluate`: the
first of a fixed ranking of candidates the solver confirms (auditor.iam.ranking), so that the same
question gets the same witness in every process, whatever z3's model.

Answers are kept by content (a `Comparer`, the engine's), so a class of labs with the same documents
is compared once per engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from itertools import islice

import structlog
import z3

from auditor.iam.automata import Found
from auditor.iam.budget import Budget, TimeUp, work
from auditor.iam.canonical import Renaming, accounts_in, renaming
from auditor.iam.catalogue import catalogue
from auditor.iam.document import ACCOUNT_ID, Policy, Statement
from auditor.iam.evaluate import Request, allows
from auditor.iam.explain import Explained, explain, grants_everything
from auditor.iam.memo import Memo
from auditor.iam.principals import Kind
from auditor.iam.question import Asking, Problem, find_model, satisfiable, texts
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
from auditor.iam.symbolic import TooComplex

log = structlog.get_logger()

_POLISH_WORK = work(0.25)  # for each attempt to make a witness easier to read
_RANKING_WORK = work(0.5)  # for the ranked search of a telling witness (auditor.iam.ranking), each way
_MAX_CANDIDATES = 48  # questions of that search, each way
_MAX_EXPLAINED = 6  # candidate sentences the solver checks, each way
_ACCOUNT_RUN = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


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


class Comparer:
    """`compare`, each answer kept by content: for the class of labs (their account ids as
    placeholders), and as each lab asked it (the next audit of the same lab skips the renaming)."""

    def __init__(self, class_size: int, lab_size: int) -> None:
        self._for_the_class: Memo[_Asked, Comparison] = Memo(class_size)
        self._for_the_lab: Memo[_Asked, Comparison] = Memo(lab_size)

    def compare(
        self,
        expected: Sequence[Statement],
        actual: Sequence[Statement],
        *,
        trust: bool,
        asking: Asking,
        setting: Setting = NOWHERE,
    ) -> Comparison:
        """Both directions of containment of the requests each side allows, with witnesses (named, where
        they can be, in the account and with the names of `setting`, auditor.iam.ranking)."""
        if frozenset(expected) == frozenset(actual):
            return SAME
        asked = (frozenset(expected), frozenset(actual), trust, setting)
        return self._for_the_lab.computed(asked, lambda: self._compared_for_the_class(asked, asking))

    def _compared_for_the_class(self, asked: _Asked, asking: Asking) -> tuple[Comparison, bool]:
        """Compared once for every lab that differs only in its account ids, told with this lab's."""
        expected, actual, trust, setting = asked
        ordered = [*sorted(expected), *sorted(actual)]
        accounts = [*accounts_in(texts(ordered)), *accounts_in(setting.texts())]
        names = renaming(accounts, ordered, setting.texts())
        key = (
            frozenset(names.statement(s) for s in expected),
            frozenset(names.statement(s) for s in actual),
            trust,
            setting.renamed(names.to_placeholders),
        )
        result = self._for_the_class.computed(key, lambda: _compared(key, asking))
        return _named(result, names), result.decided


def _compared(key: _Asked, asking: Asking) -> tuple[Comparison, bool]:
    """The comparison, and whether to keep it (not when the judgement's shared budget cut it)."""
    expected, actual, trust, setting = key
    with asking.budget() as budget:
        try:
            sides = _Sides(sorted(expected), sorted(actual), trust, setting)
            return _compare(sides, budget, asking.found), True
        except (TimeUp, TooComplex) as why:
            reason = str(why) or "time limit"
            log.warning("policy_comparison_undecided", reason=reason, time_limit=asking.time_limit)
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


def _compare(sides: _Sides, budget: Budget, found: Found) -> Comparison:
    expected, actual, trust = sides.expected, sides.actual, sides.trust
    problem = Problem([*expected, *actual], with_principal=trust, budget=budget, found=found)
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
        if satisfiable(problem, z3.And(difference, region), budget):
            kept.append(candidate)
    return kept


def _sentences(explained: list[Explained]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for e in explained for s in e.sentences))


def _difference(problem: Problem, formula: z3.BoolRef, budget: Budget, direction: _Direction) -> Difference:
    model = find_model(problem, [formula], budget)
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
            return find_model(
                self.problem, [self.formula, *pinned], self.budget, cap=cap, missing_is_unknown=False
            )
        finally:
            self.left -= before - self.budget.own.work


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
        better = find_model(
            problem, [*kept, preference.formula], budget, cap=_POLISH_WORK, missing_is_unknown=False
        )
        if better is not None:
            model, kept = better, [*kept, preference.formula]
            chosen_kind = chosen_kind or preference.kind
            if preference.value is not None:
                values[preference.value[0]] = (preference.value[1],)
    found = problem.request_from(model)
    return replace(found, context={**found.context, **values})


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
        account = segments[4] if ACCOUNT_ID.fullmatch(segments[4]) else account
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
    named = {a for text in texts([*expected, *actual]) for a in _accounts_in(text)}
    stranger = z3.Or(
        caller.is_kind(Kind.ANONYMOUS),
        z3.And(caller.is_aws(), *[caller.account != problem.symbols.text(a) for a in sorted(named)]),
    )
    return satisfiable(problem, z3.And(gained, stranger), budget)


def _grants_administration(problem: Problem, gained: z3.BoolRef, budget: Budget) -> bool:
    administrative = [i for i, c in enumerate(problem.universe.classes) if c.administrative]
    if not administrative:
        return False
    return satisfiable(problem, z3.And(gained, problem.symbols.action_is(administrative)), budget)


def _accounts_in(text: str) -> set[str]:
    return set(_ACCOUNT_RUN.findall(text))
