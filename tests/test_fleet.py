"""Each lab's job run apart: one lab's fault is its own result and one log event."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from auditor.app.fleet import run_each


def denied_on_pair_02(name: str) -> str:
    if name == "pair-02":
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteRole")
    return name.upper()


@pytest.mark.parametrize(
    ("label", "event"),
    [
        ("tearing down", "tearing_down_failed"),
        ("planning teardown", "planning_teardown_failed"),
        ("auditing", "auditing_failed"),
    ],
)
def test_a_failed_labs_event_is_one_word_named_after_the_job(label: str, event: str) -> None:
    with capture_logs() as logs:
        outcomes = run_each(["pair-01", "pair-02"], str, denied_on_pair_02, 2, label)

    assert [(o.name, o.ok) for o in outcomes] == [("pair-01", True), ("pair-02", False)]
    [failed] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert failed["event"] == event
    assert failed["lab"] == "pair-02"
    assert "AccessDenied" in failed["error"]
