"""Rendering the labs is pure: the operator's event bus is resolved before (Context.resolve_events_bus_arn)
and handed in; `targets` is the convenience that resolves it first, as it always did."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

import auditor.app.context
from auditor.app.context import Context, open_context
from auditor.domain.config import EventsSettings
from conftest import make_config, pair

BUS = "arn:aws:events:us-east-1:123456789012:event-bus/default"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/lab-auditor"


@pytest.fixture
def context() -> Iterator[Context]:
    config = replace(make_config((pair(1), pair(2))), events=EventsSettings(queue_url=QUEUE))
    with open_context(config) as opened:
        yield opened


def targets_of(rules: list[Any]) -> set[str | None]:
    return {rule.target_arn for rule in rules}


def test_rendering_the_labs_calls_no_aws(context: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_call(*_: object) -> str:
        raise AssertionError("rendering read the operator's account")

    monkeypatch.setattr(auditor.app.context, "operator_bus_arn", no_call)
    wired, named = context.rendered_targets(["pair-02"], BUS), context.rendered_targets([], None)
    assert [target.name for target in wired] == ["pair-02"]
    assert targets_of(list(wired[0].expected.event_rules)) == {BUS}
    assert targets_of([rule for target in named for rule in target.expected.event_rules]) == {None}


def test_targets_resolve_the_bus_once_and_try_again_while_it_cannot_be_read(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: list[str | Exception] = [
        ClientError({"Error": {"Code": "AccessDenied"}}, "GetCallerIdentity"),
        BUS,
    ]

    def operator_bus_arn(*_: object) -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(auditor.app.context, "operator_bus_arn", operator_bus_arn)
    assert targets_of(list(context.targets()[0].expected.event_rules)) == {None}
    assert targets_of(list(context.targets()[0].expected.event_rules)) == {BUS}
    assert context.resolve_events_bus_arn() == BUS and answers == []


def test_without_events_the_bus_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditor.app.context, "operator_bus_arn", lambda *_: BUS)
    with open_context(make_config((pair(1),))) as context:
        assert context.resolve_events_bus_arn() is None
        assert targets_of(list(context.targets()[0].expected.event_rules)) == {None}
