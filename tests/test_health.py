"""The daemon's metrics, in process: what an audit adds to each counter and to the duration histogram."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auditor.app.health import Metrics
from auditor.domain.model import LabAudit, Verdict

T0 = datetime(2026, 11, 29, 10, tzinfo=UTC)


def audit_lasting(duration: timedelta | None, verdict: Verdict = Verdict.CONFORMANT) -> LabAudit:
    return LabAudit(
        "pair-01",
        "111111111111",
        "222222222222",
        verdict,
        started_at=None if duration is None else T0,
        finished_at=T0 + (duration or timedelta(0)),
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_the_duration_histogram_observes_each_audit_to_the_millisecond() -> None:
    metrics = Metrics()
    metrics.observe_audit(audit_lasting(timedelta(milliseconds=123)))
    metrics.observe_audit(audit_lasting(timedelta(milliseconds=180)))
    assert sample(metrics, "auditor_audit_duration_seconds_sum") == pytest.approx(0.303)
    assert sample(metrics, "auditor_audit_duration_seconds_count") == 2
    assert sample(metrics, "auditor_audit_duration_seconds_bucket", le="0.1") == 0
    assert sample(metrics, "auditor_audit_duration_seconds_bucket", le="0.25") == 2


def test_an_audit_that_did_not_note_its_start_is_counted_but_not_timed() -> None:
    metrics = Metrics()
    metrics.observe_audit(audit_lasting(None, Verdict.ERROR))
    assert sample(metrics, "auditor_audits_total", verdict="error") == 1
    assert sample(metrics, "auditor_audit_duration_seconds_count") == 0
