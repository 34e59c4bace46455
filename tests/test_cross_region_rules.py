"""A change-event rule whose bus is in another Region needs an execution role that `auditor provision`
does not make (issue 25): such rules are found from the lab as rendered, and provision says so once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from auditor.app.service import warn_cross_region_rules
from auditor.app.target import LabTarget
from auditor.domain.config import LabSettings
from auditor.domain.spec import LabShape
from auditor.resources.kinds.event_rule import cross_region_rules
from auditor.resources.registry import REGISTRY
from conftest import pair


def target(number: int, region: str) -> LabTarget:
    lab = pair(number)
    bus = f"arn:aws:events:{region}:999999999999:event-bus/default"
    return LabTarget(lab, REGISTRY.render(LabShape(lab, LabSettings(region=region), bus)))


def test_outside_us_east_1_the_iam_rules_cross_to_the_bus_and_the_lambda_rules_do_not() -> None:
    crossing = cross_region_rules(target(1, "eu-west-1").expected)
    assert {(rule.region, rule.account_id) for rule in crossing} == {
        ("us-east-1", pair(1).origin.account_id),
        ("us-east-1", pair(1).destination.account_id),
    }
    assert cross_region_rules(target(1, "us-east-1").expected) == []


def told(endpoint_url: str | None, *targets: LabTarget) -> list[str]:
    lines: list[str] = []
    context: Any = SimpleNamespace(endpoint_url=endpoint_url)
    warn_cross_region_rules(context, list(targets), lines.append)
    return lines


def test_provision_on_aws_says_once_which_regions_need_the_templates_execution_role() -> None:
    [line] = told(None, target(1, "eu-west-1"), target(2, "eu-west-1"))
    assert line.startswith("the change-event rules in us-east-1 send to the operator's bus in eu-west-1")
    assert "auditor permissions --format cloudformation" in line
    assert told(None, target(1, "us-east-1")) == []
    assert told("http://127.0.0.1:5000", target(1, "eu-west-1")) == []  # an emulator asks no role
