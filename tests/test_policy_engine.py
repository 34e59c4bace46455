"""The policy engine is an object of its command's context: its answers, its places on the CPUs and the
configured time limit are its own, and nothing module-level holds an answer."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import replace
from datetime import date, timedelta
from types import ModuleType
from typing import Any

import pytest

import auditor.iam
from auditor.app.context import open_context
from auditor.common.lru import LruCache
from auditor.domain.actual import ActualLab
from auditor.domain.config import AccountAccess, AuditSettings, LabConfig, LabSettings
from auditor.domain.spec import DESTINATION_POLICY, render
from auditor.iam import automata, comparing, deciding
from auditor.iam.budget import Places
from auditor.iam.memo import Memo
from auditor.policy import (
    Decision,
    Hop,
    Kind,
    Policies,
    PolicyEngine,
    Principal,
    compare_permissions,
    parse_policy,
    policy_engine,
)
from auditor.resources.compare import judge_lab
from conftest import make_config, pair

BUCKET = "arn:aws:s3:::lab-bucket"
LISTING = {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}
READING = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{BUCKET}/*"}
ROLE = "arn:aws:iam::222222222222:role/LambdaS3ListBuckets"
# Lambda assumes the role only for one account: a key the hop leaves unknown, so the solver decides.
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "111111111111"}},
        }
    ],
}
HOP = Hop("sts:AssumeRole", ROLE, Principal(Kind.SERVICE, "lambda.amazonaws.com"))


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


EXPECTED = parse_policy(document(LISTING))
WIDER = parse_policy(document(LISTING, READING))


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the solver and the automata were made to work out (not answered from an engine's memory)."""
    work: list[str] = []
    compare, decide, cells = comparing._compare, deciding._decide, automata._cells

    def comparison(*args: Any) -> Any:
        work.append("comparison")
        return compare(*args)

    def decision(*args: Any) -> Any:
        work.append("decision")
        return decide(*args)

    def partition(*args: Any) -> Any:
        work.append("cells")
        return cells(*args)

    monkeypatch.setattr(comparing, "_compare", comparison)
    monkeypatch.setattr(deciding, "_decide", decision)
    monkeypatch.setattr(automata, "_cells", partition)
    return work


def asked(engine: PolicyEngine) -> None:
    """One comparison and one decision."""
    assert compare_permissions(engine, [EXPECTED], [WIDER]).wider is not None
    verdict = engine.decide(HOP, Policies(trust=engine.parse(TRUST), trust_only=True))
    assert verdict.decision is Decision.UNKNOWN


def test_an_engine_answers_each_question_once(computed: list[str]) -> None:
    engine = policy_engine()
    asked(engine)
    first = list(computed)
    assert {"comparison", "decision", "cells"} <= set(first)
    asked(engine)
    asked(engine.for_one_lab())  # a lab's judgement: the engine's answers
    assert computed == first


def test_two_engines_share_no_answer(computed: list[str]) -> None:
    asked(policy_engine())
    first = list(computed)
    asked(policy_engine())
    assert computed == first + first


def test_two_engines_share_no_parsed_document() -> None:
    one, other = policy_engine(), policy_engine()
    assert one.parse(TRUST) is one.parse(TRUST)
    assert other.parse(TRUST) is not one.parse(TRUST)
    assert other.parse(TRUST) == one.parse(TRUST)


def test_an_engine_s_time_limit_is_its_configuration_s() -> None:
    assert policy_engine().time_limit == AuditSettings().policy_time_limit.total_seconds()
    tight = AuditSettings(policy_time_limit=timedelta(milliseconds=300))
    assert policy_engine(tight).time_limit == 0.3


def test_a_context_owns_an_engine_with_the_configured_time_limit() -> None:
    config = make_config((pair(1),), policy_time_limit=timedelta(milliseconds=300))
    with open_context(config) as context, open_context(config) as another:
        assert context.policy_engine.time_limit == 0.3
        assert another.policy_engine is not context.policy_engine


# ----------------------------------------------------------------------------- no module-level answers


def engine_modules() -> Iterator[ModuleType]:
    """auditor.iam's modules and the modules that reach the engine (through auditor.policy)."""
    for info in pkgutil.iter_modules(auditor.iam.__path__, "auditor.iam."):
        yield importlib.import_module(info.name)
    for name in (
        "auditor.policy",
        "auditor.resources.compare",
        "auditor.resources.access",
        "auditor.domain.lab_context",
    ):
        yield sys.modules[name]


CONTAINERS = (dict, list, set, deque, Memo, LruCache)


def module_state() -> dict[str, int]:
    """The size of every module-level container of those modules."""
    return {
        f"{module.__name__}.{name}": len(value)
        for module in engine_modules()
        for name, value in vars(module).items()
        if isinstance(value, CONTAINERS)
    }


def test_no_module_holds_a_memo_a_cpu_place_or_a_lab_s_share() -> None:
    held = [
        f"{module.__name__}.{name}"
        for module in engine_modules()
        for name, value in vars(module).items()
        if isinstance(value, Memo | LruCache | Places | ContextVar | PolicyEngine)
    ]
    assert held == []


def test_judging_a_lab_grows_no_module_level_container() -> None:
    """Answers are the engine's; the functools caches of pure functions that stay are process set-up."""
    lab = LabConfig("pair-07", AccountAccess("171717171717"), AccountAccess("272727272727"))
    expected = render(lab, LabSettings())
    built = ActualLab.as_specified(expected, "sha")
    widened = {DESTINATION_POLICY: document(LISTING, READING)}
    actual = built.with_role(replace(built.destination_role, inline_policies=widened))
    before = module_state()
    judgement = judge_lab(expected, actual, "sha", date(2026, 11, 29), engine=policy_engine())
    assert judgement.findings
    assert module_state() == before
