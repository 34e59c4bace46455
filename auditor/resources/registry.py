"""The registry of the lab's kinds of resources, and everything the program derives from it.

Every module of auditor/resources/kinds/ that defines `KIND` is a kind of resource, and the data file
beside it (<module>.toml) declares its findings' codes; nothing else lists them. The lab's expected
resources (`render`, from a lab's shape alone), collection, the audit's findings, the provisioner's plan (the fixes of those findings, found by each finding's subject
and code), the teardown and the API calls that `auditor permissions` grants all come from the kinds, in
their order; the checks and codes of the report's schema, the watched calls and the CloudTrail map come
from their declarations (`catalogue`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from types import ModuleType
from typing import Any

import auditor.resources.kinds
from auditor.domain.actual import ActualLab
from auditor.domain.declarations import (
    SHIPPED,
    Catalogue,
    CodeDeclaration,
    DeclarationError,
    package_declarations,
)
from auditor.domain.model import Action, Finding, Step
from auditor.domain.spec import ExpectedLab, LabShape, ResourceKey, assemble
from auditor.resources.base import ApiCall, Clients, Facts, Kind
from auditor.resources.support import SUPPORT_CALLS

# How a declared remediation says that provisioning does it (auditor/resources/kinds/*.toml).
PROVISION_DOES = ": auditor provision does"


def discover(package: ModuleType = auditor.resources.kinds) -> tuple[Kind, ...]:
    """The `KIND` of every module in the package, as Cloud Custodian loads its resources."""
    found = []
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        kind = getattr(module, "KIND", None)
        if isinstance(kind, Kind):
            found.append(kind)
    return tuple(found)


class Registry:
    """The kinds by name, in the order they are collected and applied, with their declarations (frozen
    once built)."""

    def __init__(self, kinds: Iterable[Kind], catalogue: Catalogue = SHIPPED) -> None:
        ordered = sorted(kinds, key=lambda kind: (kind.apply_rank, kind.name))
        self._kinds = {kind.name: kind for kind in ordered}
        if len(self._kinds) != len(ordered):
            raise ValueError("two kinds of resource share a name")
        self.catalogue = catalogue
        _check_declared(self.names(), catalogue)

    def including(self, package: ModuleType) -> Registry:
        """This registry with the kinds of another package (each module's `KIND` and its data file)."""
        catalogue = self.catalogue.including(package_declarations(package.__name__))
        return Registry((*self, *discover(package)), catalogue)

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    def __getitem__(self, name: str) -> Kind:
        return self._kinds[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    # ------------------------------------------------------------------------------------- reading

    def render(self, shape: LabShape) -> ExpectedLab:
        """The lab of this shape: each kind's expected resources, in the kinds' order (pure)."""
        return assemble(shape, (kind.render for kind in self))

    def collect(self, clients: Clients, expected: ExpectedLab, *, for_teardown: bool = False) -> ActualLab:
        """Everything the spec names, as it is now; the teardown also looks for rules the spec no longer wires.

        The kinds of one stage read at once (a lab costs its longest chain of requests, not their sum),
        each from the state of the stages before; the entries each read join the lab's in the kinds' order.
        """
        actual = ActualLab.before_collection(expected)
        for stage in self.collection_stages():
            for entries in clients.each(partial(_collected, clients, expected, actual, for_teardown), stage):
                actual = actual.with_entries(entries)
        return actual

    def collection_stages(self) -> list[list[Kind]]:
        """The kinds in stages: each kind after the kinds it `collects_after`, in their order within one."""
        depth: dict[str, int] = {}
        for kind in self:  # a kind's dependencies come before it in the apply order
            depth[kind.name] = 1 + max((depth[name] for name in kind.collects_after), default=-1)
        stages: list[list[Kind]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
        for kind in self:
            stages[depth[kind.name]].append(kind)
        return stages

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        return [found for kind in self for found in kind.compare(expected, actual, facts)]

    # ------------------------------------------------------------------------------------- changing

    def fixes(self, finding: Finding, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        """How the provisioner fixes one finding (in apply order): the step its code declares on its
        subject, and the steps of the kinds that answer it too; none when no provisioning fixes it."""
        declared = self.catalogue.declared(finding)
        steps = [] if declared is None else _declared_step(finding, declared)
        for kind, answer in self.catalogue.answers(finding):
            owned = [step for step in self[kind].managed(expected, actual) if _of_owner(step, finding)]
            steps += [_answering(finding, step, answer.step, answer.reason) for step in owned]
        return self.in_apply_order(steps, expected)

    def remediation(self, finding: Finding, *, by_provisioning: bool = True) -> str:
        """What a person does about the finding, as its code declares it ("" for a code not declared);
        `by_provisioning` False, where provisioning would not fix it (a student's own resource), without
        the declaration's "auditor provision does"."""
        declared = self.catalogue.declared(finding)
        if declared is None:
            return ""
        return declared.remediation if by_provisioning else declared.remediation.replace(PROVISION_DOES, "")

    def plan(self, expected: ExpectedLab, actual: ActualLab, findings: Sequence[Finding]) -> list[Step]:
        """The fixes of the findings, over every resource the provisioner manages (`no change` for the rest)."""
        steps = {step.key: step for kind in self for step in kind.managed(expected, actual)}
        for found in findings:
            for step in self.fixes(found, expected, actual):
                steps[step.key] = _merged(steps.get(step.key), step)
        return self.in_apply_order(list(steps.values()), expected)

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        """What the teardown removes, in an order AWS accepts (a role's policies before the role)."""
        steps = [step for kind in self for step in kind.removals(expected, actual)]

        def rank(step: Step) -> tuple[int, int, int]:
            kind = self[step.kind]
            stage, order = kind.removal_rank
            return (stage, kind.owner_rank(step, expected, removal=True), order)

        return sorted(steps, key=rank)

    def in_apply_order(self, steps: list[Step], expected: ExpectedLab) -> list[Step]:
        """Roles before the function that runs as one; a resource's changes before its removals."""

        def rank(step: Step) -> tuple[int, int, int, bool]:
            kind = self[step.kind]
            stage, order = kind.apply_rank
            return (
                stage,
                kind.owner_rank(step, expected, removal=False),
                order,
                step.action is Action.DELETE,
            )

        return sorted(steps, key=rank)

    def api_calls(self) -> tuple[ApiCall, ...]:
        return (*SUPPORT_CALLS, *(api_call for kind in self for api_call in kind.calls))


def _collected(
    clients: Clients, expected: ExpectedLab, actual: ActualLab, for_teardown: bool, kind: Kind
) -> Mapping[ResourceKey, Any]:
    return kind.collect(clients, expected, actual, for_teardown=for_teardown)


def _declared_step(finding: Finding, declared: CodeDeclaration) -> list[Step]:
    if declared.step is None or finding.subject is None:
        return []
    subject = finding.subject
    reason = finding.message if declared.reason is None else declared.reason
    return [
        Step(
            subject.kind,
            subject.account,
            subject.owner,
            subject.name,
            declared.step,
            reason,
            finding.resource,
        )
    ]


def _of_owner(step: Step, finding: Finding) -> bool:
    subject = finding.subject
    return subject is not None and (step.account_id, step.owner) == (subject.account, subject.owner)


def _answering(finding: Finding, managed: Step, action: Action, reason: str | None) -> Step:
    """A resource of another kind, of the finding's owner, that answers the finding too."""
    return replace(
        managed,
        action=action,
        reason=finding.message if reason is None else reason,
        resource=finding.resource,
    )


def _check_declared(kinds: tuple[str, ...], catalogue: Catalogue) -> None:
    """Each kind has its data file and each data file its kind."""
    for name in kinds:
        if name not in catalogue.kinds():
            raise DeclarationError(
                f"kind {name!r} has no data file: a <module>.toml with kind = {name!r} beside its module"
            )
    for declaration in catalogue:
        if declaration.kind not in kinds:
            raise DeclarationError(
                f"{declaration.source}: kind: no module defines a KIND named {declaration.kind!r}"
            )


def _merged(planned: Step | None, fix: Step) -> Step:
    """One step answers several findings of one resource (an update of the function for each setting)."""
    if planned is None or not planned.changes:
        return fix
    reasons = [r for r in (planned.reason, fix.reason) if r]
    return replace(planned, reason="; ".join(dict.fromkeys(reasons)))


REGISTRY = Registry(discover(), SHIPPED)
