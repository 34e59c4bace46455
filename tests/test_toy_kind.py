"""A new check is one kind module and its data file: a toy kind, written into a package of its own in a
temporary folder and added to the registry, is in the report's schema, the provisioner's plan, the
permissions `auditor permissions` prints, the watched calls and the CloudTrail map, without a change to
any other module."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

import pytest
from cloudtrail_records import assumed_role, record

from auditor.aws.cloudtrail import Touched, change_from_record, explain, touched_resources
from auditor.domain.config import LabSettings
from auditor.domain.declarations import DeclarationError
from auditor.domain.model import Action, Subject
from auditor.domain.spec import WATCHED_CALLS, change_event_pattern, render
from auditor.policy import policy_engine
from auditor.report import report_schema
from auditor.resources.compare import judge_lab
from auditor.resources.permissions import lab_account_policy
from auditor.resources.registry import REGISTRY, Registry
from conftest import lab_as_built, pair

LAB = pair(1)
EXPECTED = render(LAB, LabSettings())
ROLE = EXPECTED.destination_role

MODULE = '''
"""A toy kind: the destination role must carry the tag course=lab."""

from __future__ import annotations

from typing import ClassVar

from auditor.domain.actual import ActualLab
from auditor.domain.model import Action, Effect, Finding, Severity, Status, Step
from auditor.resources.base import READ, Clients, Facts, Kind, Part, Sleep, call, finding
from auditor.resources.kinds.role import LAB_ROLES
from auditor.domain.spec import ExpectedLab

TAG = "course"


class RoleTag(Kind):
    name = "role_tag"
    apply_rank = (0, 9)
    removal_rank = (9, 9)
    collects_after = ("role",)
    calls: ClassVar = (
        call("iam:ListRoleTags", LAB_ROLES, *READ, used_by="role_tag.collect"),
        call("iam:TagRole", LAB_ROLES, Part.PROVISION, used_by="role_tag.apply"),
    )

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        role = expected.destination_role
        if actual.resources.get(self.subject(role.account_id, role.name, TAG)) == "lab":
            return []
        return [
            finding(
                "role_tag.missing",
                self.subject(role.account_id, role.name, TAG),
                role.arn,
                Status.MISSING,
                Effect.NONE,
                Severity.LOW,
                f"role {role.name} has no tag {TAG}=lab",
            )
        ]

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        role = expected.destination_role
        return [Step(self.name, role.account_id, role.name, TAG, Action.NO_CHANGE)]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        clients.client(step.account_id, "iam").tag_role(RoleName=step.owner, Tags=[{"Key": TAG, "Value": "lab"}])


KIND = RoleTag()
'''

DATA = """
kind = "role_tag"

[codes."role_tag.missing"]
title = "The destination role lacks the class's tag"
severity = "low"
remediation = "tag the role course=lab: auditor provision does"
step = "create"
changed_by = ["iam:TagRole", "iam:UntagRole"]
"""


def toy_package(root: Path, name: str, files: dict[str, str]) -> ModuleType:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text('"""Kinds of a test."""\n', encoding="utf-8")
    for file, text in files.items():
        (folder / file).write_text(textwrap.dedent(text), encoding="utf-8")
    return importlib.import_module(name)


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("toykinds"):
            del sys.modules[name]


@pytest.fixture
def registry(packages: Path) -> Registry:
    package = toy_package(packages, "toykinds", {"role_tag.py": MODULE, "role_tag.toml": DATA})
    return REGISTRY.including(package)


def test_the_toy_kind_s_check_and_code_are_in_the_report_schema(registry: Registry) -> None:
    properties = report_schema(registry)["$defs"]["finding"]["properties"]
    assert "role_tag" in properties["check"]["enum"] and "role_tag.missing" in properties["code"]["enum"]
    shipped = report_schema()["$defs"]["finding"]["properties"]
    assert "role_tag" not in shipped["check"]["enum"]


def test_a_finding_of_the_toy_kind_is_fixed_by_a_step_of_it_in_the_plan(registry: Registry) -> None:
    actual = lab_as_built(EXPECTED, "sha")
    judgement = judge_lab(
        EXPECTED, actual, "sha", date(2026, 11, 29), registry=registry, engine=policy_engine()
    )
    [toy] = judgement.findings
    assert (toy.check, toy.code, toy.fixable) == ("role_tag", "role_tag.missing", True)
    changing = [step for step in registry.plan(EXPECTED, actual, judgement.findings) if step.changes]
    assert [(s.kind, s.account_id, s.owner, s.name, s.action, s.reason, s.resource) for s in changing] == [
        ("role_tag", ROLE.account_id, ROLE.name, "course", Action.CREATE, toy.message, ROLE.arn)
    ]
    tagged = actual.with_entries({Subject("role_tag", ROLE.account_id, ROLE.name, "course"): "lab"})
    again = judge_lab(EXPECTED, tagged, "sha", date(2026, 11, 29), registry=registry, engine=policy_engine())
    assert again.findings == ()


def test_the_toy_kind_s_calls_are_in_the_permissions(registry: Registry) -> None:
    def actions(policy: dict[str, object]) -> set[str]:
        return {action for statement in policy["Statement"] for action in statement["Action"]}  # type: ignore[attr-defined]

    assert "iam:ListRoleTags" in actions(lab_account_policy(registry))
    assert "iam:ListRoleTags" not in actions(lab_account_policy())


def test_the_toy_kind_s_events_are_watched_and_explain_its_findings(registry: Registry) -> None:
    watched = registry.catalogue.watched_calls()
    assert {"TagRole", "UntagRole"} <= set(watched["aws.iam"])
    assert "TagRole" not in WATCHED_CALLS["aws.iam"]
    assert "TagRole" in change_event_pattern(watched=watched)["detail"]["eventName"]

    tagging = record(
        ROLE.account_id,
        "UntagRole",
        {"roleName": ROLE.name, "tagKeys": ["course"]},
        identity=assumed_role(ROLE.account_id, "mallory"),
    )
    assert touched_resources(tagging, catalogue=registry.catalogue) == {
        Touched(ROLE.arn, frozenset({"role_tag.missing"}))
    }
    assert touched_resources(tagging) == frozenset()  # the shipped kinds know no such call
    change = change_from_record(tagging, catalogue=registry.catalogue)
    assert change is not None
    actual = lab_as_built(EXPECTED, "sha")
    [toy] = judge_lab(
        EXPECTED, actual, "sha", date(2026, 11, 29), registry=registry, engine=policy_engine()
    ).findings
    [explained] = explain([toy], [change], datetime.now(UTC))
    assert explained.changed_by is not None and explained.changed_by.arn.endswith("/mallory")


def test_a_toy_kind_without_its_data_file_is_refused_naming_it(packages: Path) -> None:
    package = toy_package(packages, "toykinds_bare", {"role_tag.py": MODULE})
    with pytest.raises(DeclarationError, match="kind 'role_tag' has no data file"):
        REGISTRY.including(package)


def test_a_toy_data_file_with_a_typo_is_refused_naming_the_file_and_key(packages: Path) -> None:
    files = {"role_tag.py": MODULE, "role_tag.toml": DATA.replace("severity", "severty")}
    package = toy_package(packages, "toykinds_typo", files)
    with pytest.raises(
        DeclarationError, match=r"role_tag\.toml: codes\.role_tag\.missing\.severty: unknown key"
    ):
        REGISTRY.including(package)
