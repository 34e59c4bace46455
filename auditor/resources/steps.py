"""Each step of the guide, judged from what one audit has (lab.md, "The guide as a rubric"; pure).

When students build the lab (`[class] built_by = "students"`), an audit says of each step of the rubric
whether it is `done`, `hardened`, `wrong` or `missing`, with one sentence the student can act on. The
judge reads only what the audit already has: the expected lab, the collected state, the audit's
findings and the function's run. It never reads text:

- a step is `missing` when the resource of its subject (the destination role, the origin role, the
  function) is absent;
- `wrong` when a finding of one of its `fails_on` codes stands about its subject (its feedback names
  what was found and what the step asks), or one of its `hardened_by` codes that is no hardening (a
  narrowing that breaks the lab); a finding that changes nothing (a policy under another name that
  grants the same, an extra policy that grants nothing more) fails no step;
- `hardened` when a finding of one of its `hardened_by` codes stands, a narrowing that the lab's
  requests still get through (the access path says so, or the run proves it), and the run of the
  function succeeded; `done` otherwise. Both hardening settings give `hardened`: the grade decides
  what it earns.

The function is judged by behaviour, not against the project's own function: its handler, its
environment and its code's digest are the student's (the `lambda_config` and `lambda_code` findings
fail no step); it must exist, run on a supported Python runtime and as the origin role. `function-code`
is judged from the role its run asks to assume (the role ARN in the run's error or answer),
`function-run` from the run itself (it listed the destination's buckets, the marker among them); a
step `after_class` (the guide's teardown) is `done` when the function and both roles are gone.

Whether a step is blocked by one it needs, late, or pending until the class ends is the grade's to
decide (auditor/domain/steps.py), not this judge's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from auditor.domain.actual import ActualLab
from auditor.domain.model import Effect, Finding, InvokeResult, Severity
from auditor.domain.spec import (
    FUNCTION_KIND,
    INLINE_POLICY_KIND,
    MANAGED_POLICY_KIND,
    PERMISSIONS_BOUNDARY_KIND,
    ROLE_KIND,
    ExpectedLab,
)
from auditor.domain.steps import SUBJECTS, Rubric, RubricStep, StepResult, StepStatus
from auditor.policy import PolicyEngine, compare_permissions
from auditor.resources.base import parse_or_none
from auditor.resources.kinds.function import RUNTIME_DEPRECATED_ON

# A step's subject, whose resource it is about (RubricStep.subject, one of SUBJECTS; by the guide's step
# ids for a rubric that does not say).
DESTINATION_ROLE, ORIGIN_ROLE, FUNCTION, LAB = SUBJECTS

# The guide's steps judged by behaviour, by their id.
FUNCTION_CODE_STEP = "function-code"
FUNCTION_RUN_STEP = "function-run"

# The function's settings are the student's (interface.md, "Students build it"): these checks never fail
# a step; the judge reads the runtime and the execution role itself.
_THE_STUDENTS_OWN = ("lambda_config", "lambda_code")
_ROLE_KINDS = frozenset({ROLE_KIND, INLINE_POLICY_KIND, MANAGED_POLICY_KIND, PERMISSIONS_BOUNDARY_KIND})
_FUNCTION_KINDS = frozenset({FUNCTION_KIND, "function_code"})

# The run never got to the student's code: nothing can be said of what it asks for.
_NOT_RUN = frozenset({"function_missing", "code_unavailable", "execution_role", "function_throttled"})
# The run ended normally, but its answer could not be read: which role it assumed cannot be told.
_UNREADABLE_ANSWER = frozenset({"bad_answer"})

# A role as IAM names it in an error ("... on resource: arn:aws:iam::222222222222:role/Name"); its
# account may be a placeholder the student did not replace (`account2`).
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::([^:\s'\"]*):role/((?:[\w+=,.@-]+/)*[\w+=,.@-]+)")
# The session the run assumed, as STS names it in its answer (arn:aws:sts::222...:assumed-role/Name/session).
_ASSUMED_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):sts::([^:\s]*):assumed-role/([\w+=,.@-]+)/")
_CLIPPED = "…"
# Lambda's answer for a function that raised, its message first.
_ERROR_MESSAGE = re.compile(r'^\s*\{\s*"errorMessage"\s*:\s*"((?:[^"\\]|\\.)*)')

GUIDE_REGION = "us-east-1"  # the guide's log statement names it, whatever the lab's region


@dataclass(frozen=True)
class _Evidence:
    """What the audit has of one lab, for every step."""

    expected: ExpectedLab
    actual: ActualLab
    findings: tuple[Finding, ...]
    invoke: InvokeResult | None
    hardening: str
    today: date | None
    engine: PolicyEngine | None

    @property
    def run_worked(self) -> bool:
        return self.invoke is not None and self.invoke.ok

    @property
    def origin(self) -> str:
        return self.expected.origin_account

    @property
    def destination(self) -> str:
        return self.expected.destination_account

    @property
    def partners_destination(self) -> str:
        if self.origin == self.destination:
            return f"your destination is your own account, {self.destination}"
        return f"your partner's destination is {self.destination}"


def judge_steps(
    rubric: Rubric,
    expected: ExpectedLab,
    actual: ActualLab,
    findings: Iterable[Finding],
    invoke: InvokeResult | None,
    hardening: str = "drift",
    *,
    today: date | None = None,
    engine: PolicyEngine | None = None,
) -> tuple[StepResult, ...]:
    """Each step of the rubric, in its order, as the lab stands: done, hardened, wrong or missing.

    `invoke`: the audit's run of the function (None: not run, so the steps judged by the run are
    `missing`, "not judged"); `hardening`: `[class] hardening`, which only words a hardened step's
    feedback; `today`: the audit's day, for the runtimes Lambda no longer accepts (None: any Python
    runtime); `engine`: the audit's policy engine, to accept the guide's own log statement for
    us-east-1 in a lab of another region (None: judged as the findings say).
    """
    evidence = _Evidence(expected, actual, tuple(findings), invoke, hardening, today, engine)
    return tuple(_judge(step, evidence) for step in rubric.steps)


def subject_of(step: RubricStep) -> str:
    """Whose resource a step is about: the rubric's word for it, else the guide's (by the step's id)."""
    if step.subject:
        return step.subject
    if step.after_class:
        return LAB
    if step.step.startswith("dest"):
        return DESTINATION_ROLE
    if step.step.startswith("origin"):
        return ORIGIN_ROLE
    if step.step.startswith("function"):
        return FUNCTION
    return LAB


def _judge(step: RubricStep, evidence: _Evidence) -> StepResult:
    if step.after_class:
        return _judge_cleanup(step, evidence)
    if step.step == FUNCTION_CODE_STEP:
        return _judge_code(step, evidence)
    if step.step == FUNCTION_RUN_STEP:
        return _judge_run(step, evidence)
    subject = subject_of(step)
    if subject == FUNCTION:
        return _judge_function(step, evidence)
    return _judge_by_findings(step, subject, evidence)


# ------------------------------------------------------------------------------ by the findings


def _about(subject: str, evidence: _Evidence) -> list[Finding]:
    """The audit's findings about a subject's resource (a role: itself and what is on it)."""
    expected = evidence.expected
    if subject == LAB:
        return list(evidence.findings)
    if subject == FUNCTION:
        owner, kinds = (expected.function.account_id, expected.function.name), _FUNCTION_KINDS
    else:
        role = expected.destination_role if subject == DESTINATION_ROLE else expected.origin_role
        owner, kinds = (role.account_id, role.name), _ROLE_KINDS
    return [
        found
        for found in evidence.findings
        if found.subject is not None
        and found.subject.kind in kinds
        and (found.subject.account, found.subject.owner) == owner
    ]


def _changes_nothing(found: Finding) -> bool:
    """A finding of a difference that grants and takes nothing (a policy under another name that grants
    the same, an extra one that grants nothing more, another supported runtime)."""
    return not found.breaks_lab and found.effect is Effect.NONE and found.severity.rank <= Severity.LOW.rank


def _hardens(found: Finding, step: RubricStep, evidence: _Evidence) -> bool:
    """Narrower than the guide, and the lab's own requests still get through: the access path says so
    (a low narrowing), or the run proved it."""
    return (
        found.code in step.hardened_by
        and found.effect is Effect.NARROWED
        and not found.breaks_lab
        and (found.severity.rank <= Severity.LOW.rank or evidence.run_worked)
    )


def _fails(found: Finding, step: RubricStep, evidence: _Evidence) -> bool:
    """A finding of its `fails_on` codes, or of its `hardened_by` codes that is no hardening (a narrowing
    that breaks the lab, or that neither the access path nor the run shows the lab gets through), unless
    it changes nothing."""
    return (
        (found.code in step.fails_on or found.code in step.hardened_by)
        and not _changes_nothing(found)
        and not _hardens(found, step, evidence)
    )


def _worst(findings: list[Finding]) -> Finding:
    return max(findings, key=lambda f: (f.breaks_lab, f.severity.rank))


def _judge_by_findings(step: RubricStep, subject: str, evidence: _Evidence) -> StepResult:
    if (absent := _absent(subject, evidence)) is not None:
        return _missing(step, subject, absent, evidence)
    about = [found for found in _about(subject, evidence) if found.check not in _THE_STUDENTS_OWN]
    failing = [found for found in about if _fails(found, step, evidence)]
    if failing and (guide := _as_the_guide_prints_it(step, subject, failing, evidence)) is not None:
        return guide
    if failing:
        return StepResult(step.step, StepStatus.WRONG, _found(_worst(failing), step, evidence))
    return _done_or_hardened(step, about, evidence)


def _done_or_hardened(step: RubricStep, about: list[Finding], evidence: _Evidence) -> StepResult:
    hardenings = [found for found in about if _hardens(found, step, evidence)]
    if not hardenings or not evidence.run_worked:
        return StepResult(step.step, StepStatus.DONE)
    credit = (
        "it earns the step"
        if evidence.hardening == "credit"
        else "this class gives the step for the guide's own setting"
    )
    return StepResult(
        step.step,
        StepStatus.HARDENED,
        f"Narrower than the guide, and the lab still works ({_clause(hardenings[0].message)}): {credit}.",
    )


def _found(found: Finding, step: RubricStep, evidence: _Evidence) -> str:
    return f"Found: {_clause(found.message)}; {_asks(step, evidence)}."


def _clause(text: str) -> str:
    return text.strip().rstrip(".")


def _absent(subject: str, evidence: _Evidence) -> str | None:
    """Why the subject's resource is missing, or None when it is there."""
    expected, actual = evidence.expected, evidence.actual
    if subject == DESTINATION_ROLE and not actual.destination_role.exists:
        role = expected.destination_role
        return f"No role {role.name} in account {role.account_id}, the destination"
    if subject == ORIGIN_ROLE and not actual.origin_role.exists:
        role = expected.origin_role
        return f"No role {role.name} in account {role.account_id}, the origin"
    if subject == FUNCTION and not actual.function.exists:
        function = expected.function
        return f"No function {function.name} in account {function.account_id} ({function.region})"
    return None


def _under_a_near_name(step: RubricStep, subject: str, evidence: _Evidence) -> StepResult | None:
    """The subject's resource missing, but one under a near name in its account (lab.md, "Near
    names"): `wrong`, naming both; None when there is none."""
    expected, actual = evidence.expected, evidence.actual
    if subject in (DESTINATION_ROLE, ORIGIN_ROLE):
        destination = subject == DESTINATION_ROLE
        spec = expected.destination_role if destination else expected.origin_role
        role = actual.destination_role if destination else actual.origin_role
        kind, near, name = "role", role.near_name, spec.name
        where = f"account {spec.account_id}, the {'destination' if destination else 'origin'}"
    elif subject == FUNCTION:
        function = expected.function
        kind, near, name = "function", actual.function.near_name, function.name
        where = f"account {function.account_id} ({function.region})"
    else:
        return None
    if near is None:
        return None
    return StepResult(
        step.step,
        StepStatus.WRONG,
        f"Found {kind} {near} in {where}; the guide names it {name}: make it under that name"
        f" (the lab's ARNs name it exactly, so {near} is not the {kind} the lab uses).",
    )


def _missing(step: RubricStep, subject: str, absent: str, evidence: _Evidence) -> StepResult:
    """The subject's resource is absent: `wrong` under a near name, else `missing`, with what the step asks."""
    if (near := _under_a_near_name(step, subject, evidence)) is not None:
        return near
    return StepResult(step.step, StepStatus.MISSING, f"{absent}; {_asks(step, evidence)}.")


def _asks(step: RubricStep, evidence: _Evidence) -> str:
    """What the step asks, as a clause ("the step asks ...")."""
    expected = evidence.expected
    destination, origin = expected.destination_role, expected.origin_role
    function = expected.function
    asks: Mapping[str, Callable[[], str]] = {
        "dest-role": lambda: f"the step asks for role {destination.name} in account {destination.account_id}",
        "dest-trust": lambda: (
            f'the step asks its trust to admit account {origin.account_id} ("Another AWS account")'
            " or a narrower principal of it, and no one else"
        ),
        "dest-policy": lambda: (
            "the step asks its policies to allow s3:ListAllMyBuckets and nothing more, with no managed policy"
        ),
        "origin-role": lambda: (
            f"the step asks for role {origin.name} in account {origin.account_id} that Lambda may assume"
        ),
        "origin-policy": lambda: (
            f"the step asks its policy to let the function assume {destination.arn} and write its logs,"
            " nothing more"
        ),
        "function": lambda: (
            f"the step asks for function {function.name} in account {function.account_id} on a supported"
            f" Python runtime, with role {origin.name}"
        ),
    }
    worded = asks.get(step.step)
    return worded() if worded is not None else f"the step asks: {step.title}"


def _as_the_guide_prints_it(
    step: RubricStep, subject: str, failing: list[Finding], evidence: _Evidence
) -> StepResult | None:
    """The origin's policy as the guide prints it, its log statement for us-east-1 in a lab of another
    region: the guide's own error, which costs nothing (lab.md); its feedback says so. None otherwise."""
    expected, engine = evidence.expected, evidence.engine
    if engine is None or subject != ORIGIN_ROLE or expected.region == GUIDE_REGION:
        return None
    if any(found.subject is None or found.subject.kind == MANAGED_POLICY_KIND for found in failing):
        return None
    role = evidence.actual.origin_role
    spec = expected.origin_role
    if role.managed_policies or role.boundary_arn:
        return None
    here = f"arn:aws:logs:{expected.region}:"
    as_printed = [
        engine.parse(_replaced(document, here, f"arn:aws:logs:{GUIDE_REGION}:"))
        for document in spec.inline_policies.values()
    ]
    policies = [parse_or_none(engine, document) for document in role.inline_policies.values()]
    if not policies or any(policy is None for policy in policies):
        return None
    diff = compare_permissions(engine, as_printed, [policy for policy in policies if policy is not None])
    if diff.effect is not Effect.NONE or not diff.decided:
        return None
    return StepResult(
        step.step,
        StepStatus.DONE,
        f"Your log statement names {GUIDE_REGION}, as the guide prints it; in {expected.region}, the lab's"
        f" region, the function's logs will not be written: name {expected.region} in it.",
    )


def _replaced(document: Any, old: str, new: str) -> Any:
    if isinstance(document, str):
        return document.replace(old, new)
    if isinstance(document, list):
        return [_replaced(item, old, new) for item in document]
    if isinstance(document, dict):
        return {key: _replaced(value, old, new) for key, value in document.items()}
    return document


# ------------------------------------------------------------------------------ the function


def _judge_function(step: RubricStep, evidence: _Evidence) -> StepResult:
    """The function by what it is, not by the project's own: it exists, on a supported Python runtime,
    as the origin role; its handler, environment and code are the student's."""
    if (absent := _absent(FUNCTION, evidence)) is not None:
        return _missing(step, FUNCTION, absent, evidence)
    function, origin = evidence.actual.function, evidence.expected.origin_role
    runtime = function.runtime
    if not _supported_python(runtime, evidence.today):
        found = f"the function runs on {runtime or 'no runtime'}"
        if runtime.startswith("python"):
            found += ", which Lambda no longer supports"
        return StepResult(
            step.step,
            StepStatus.WRONG,
            f"Found: {found}; the step asks for a supported Python runtime, such as"
            f" {evidence.expected.function.runtime} (the guide's Python 3.6 can no longer be chosen).",
        )
    if _role_account_and_name(function.role) != (origin.account_id, origin.name):
        hint = (
            f" (the guide's step 6 names {_name_of(function.role)}, a role of another lab: choose {origin.name})"
            if _name_of(function.role).lower() == "lambdalists3role"
            else ""
        )
        return StepResult(
            step.step,
            StepStatus.WRONG,
            f"Found: the function runs as {function.role or 'no role'}{hint}; the step asks for role"
            f" {origin.arn}.",
        )
    return _judge_by_findings_of_function(step, evidence)


def _judge_by_findings_of_function(step: RubricStep, evidence: _Evidence) -> StepResult:
    about = [found for found in _about(FUNCTION, evidence) if found.check not in _THE_STUDENTS_OWN]
    failing = [found for found in about if _fails(found, step, evidence)]
    if failing:
        return StepResult(step.step, StepStatus.WRONG, _found(_worst(failing), step, evidence))
    return _done_or_hardened(step, about, evidence)


def _supported_python(runtime: str, today: date | None) -> bool:
    if not runtime.startswith("python"):
        return False
    deprecated_on = RUNTIME_DEPRECATED_ON.get(runtime)
    return deprecated_on is None or today is None or today < deprecated_on


def _role_account_and_name(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    return (parts[4] if len(parts) > 5 else "", _name_of(arn))


def _name_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


# ------------------------------------------------------------------------------ by the run


def role_asked_for(invoke: InvokeResult) -> tuple[str, str, str] | None:
    """The role the run asked to assume, as (ARN, account, name): from its last AssumeRole where the run
    was watched (a local run records its calls), else the session its answer names, or the role its
    error names; None when the run names none (or only a clipped one)."""
    for call in reversed(invoke.calls):
        if call.operation == "AssumeRole" and call.role_arn is not None:
            if (role := _ROLE_ARN.fullmatch(call.role_arn)) is not None:
                return (call.role_arn, role.group(1), _name_of(role.group(2)))
            return (call.role_arn, "", call.role_arn)
    answer = invoke.answer
    if isinstance(answer, Mapping):
        for key in ("assumed_role_arn", "role_arn"):
            value = answer.get(key)
            if isinstance(value, str):
                if (session := _ASSUMED_ROLE_ARN.match(value)) is not None:
                    partition, account, name = session.groups()
                    return (f"arn:{partition}:iam::{account}:role/{name}", account, name)
                if (role := _ROLE_ARN.fullmatch(value)) is not None:
                    return (value, role.group(1), _name_of(role.group(2)))
    for text in (invoke.detail, invoke.cause):
        for role in _ROLE_ARN.finditer(text):
            if text[role.end() :].startswith(_CLIPPED):
                continue  # cut off by the detail's limit: its name is not the whole name
            return (role.group(0), role.group(1), _name_of(role.group(2)))
    return None


def _not_judged(step: RubricStep, evidence: _Evidence) -> StepResult | None:
    """The steps judged by the run: missing when there is no function, or no run of it to judge."""
    if (absent := _absent(FUNCTION, evidence)) is not None:
        return StepResult(step.step, StepStatus.MISSING, f"{absent}; create it first.")
    invoke = evidence.invoke
    if invoke is None:
        return StepResult(step.step, StepStatus.MISSING, "Not judged: this audit did not run the function.")
    if invoke.cause in _NOT_RUN:
        return StepResult(
            step.step,
            StepStatus.MISSING,
            f"Not judged: the function could not be run ({_cause(invoke)}).",
        )
    return None


def _cause(invoke: InvokeResult) -> str:
    cause = invoke.cause.replace("_", " ")
    detail = _error_message(invoke.detail)
    return f"{cause}: {_clause(detail)}" if detail else cause


def _error_message(detail: str) -> str:
    """The error of a function that raised, as Lambda answers it (`{"errorMessage": ...}`, maybe cut
    off by the detail's limit); any other detail as it is."""
    if (message := _ERROR_MESSAGE.match(detail)) is not None:
        try:
            return str(json.loads(f'"{message.group(1)}"'))
        except ValueError:
            return message.group(1)
    return detail


def _judge_code(step: RubricStep, evidence: _Evidence) -> StepResult:
    """By what the run asks for: the role of its AssumeRole, which must be the destination role of the
    student's own pair."""
    if (not_judged := _not_judged(step, evidence)) is not None:
        return not_judged
    invoke = evidence.invoke
    assert invoke is not None  # _not_judged said so
    destination = evidence.expected.destination_role
    asked = role_asked_for(invoke)
    if asked is None:
        if invoke.ok or invoke.cause == "marker_missing":
            # It listed the destination account's buckets: it assumed a role there.
            return StepResult(step.step, StepStatus.DONE)
        if invoke.cause == "wrong_account" and isinstance(invoke.answer, Mapping):
            listed = str(invoke.answer.get("destination_account", ""))
            return StepResult(step.step, StepStatus.WRONG, _elsewhere(listed, None, evidence))
        if invoke.cause in _UNREADABLE_ANSWER:
            return StepResult(
                step.step,
                StepStatus.MISSING,
                f"Not judged: the function's answer tells no role ({_cause(invoke)}).",
            )
        return StepResult(
            step.step,
            StepStatus.WRONG,
            f"The function's run named no role to assume ({_cause(invoke)}); the step asks it to assume"
            f" {destination.arn}.",
        )
    arn, account, name = asked
    if (account, name) == (destination.account_id, destination.name):
        return StepResult(step.step, StepStatus.DONE)
    if account == destination.account_id:
        yours = (
            f"your role in account {account} is {destination.name}"
            if evidence.actual.destination_role.exists
            else f"the guide names it {destination.name}, in account {account}"
        )
        return StepResult(step.step, StepStatus.WRONG, f"The function assumes {arn}; {yours}.")
    if not account.isdigit():
        return StepResult(
            step.step,
            StepStatus.WRONG,
            f"The function assumes {arn}: replace {account or 'the empty account'} with the account id;"
            f" {evidence.partners_destination}.",
        )
    return StepResult(step.step, StepStatus.WRONG, _elsewhere(account, arn, evidence))


def _elsewhere(account: str, arn: str | None, evidence: _Evidence) -> str:
    """The run asked for a role in another account than the destination."""
    if account == evidence.origin:
        return f"The function assumes a role in account {account}, your own; {evidence.partners_destination}."
    named = f" ({arn})" if arn else ""
    return (
        f"The function assumes a role in account {account or 'unknown'}{named}, not in your pair;"
        f" {evidence.partners_destination}."
    )


def _judge_run(step: RubricStep, evidence: _Evidence) -> StepResult:
    """A run lists the destination's buckets, the marker among them (the invoke check's proof)."""
    if (not_judged := _not_judged(step, evidence)) is not None:
        return not_judged
    invoke = evidence.invoke
    assert invoke is not None  # _not_judged said so
    if invoke.ok:
        return StepResult(step.step, StepStatus.DONE)
    marker = evidence.expected.marker_bucket.name
    return StepResult(
        step.step,
        StepStatus.WRONG,
        f"The function's run did not list the destination's buckets ({_cause(invoke)}); the step asks a"
        f" run to list the buckets of account {evidence.destination}, {marker} among them.",
    )


# ------------------------------------------------------------------------------ after the class


def _judge_cleanup(step: RubricStep, evidence: _Evidence) -> StepResult:
    """Done when the function and both roles are gone; wrong, naming what remains (the grade decides
    whether it is judged yet, and that a lab never built earns nothing)."""
    expected, actual = evidence.expected, evidence.actual
    remaining = []
    if actual.function.exists:
        remaining.append(f"function {expected.function.name} in account {expected.function.account_id}")
    for spec, role in zip(expected.roles, actual.roles, strict=True):
        if role.exists:
            remaining.append(f"role {spec.name} in account {spec.account_id}")
    if not remaining:
        return StepResult(step.step, StepStatus.DONE)
    return StepResult(
        step.step,
        StepStatus.WRONG,
        f"Still there: {', '.join(remaining)}; the step asks you to delete the function, then each role's"
        " inline policy, then the roles.",
    )
