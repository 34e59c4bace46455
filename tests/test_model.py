"""The plain values: instants are datetimes inside, written as interface.md says only in the JSON."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from auditor.domain.model import (
    Actor,
    AuditRun,
    Effect,
    Finding,
    LabAudit,
    Severity,
    Status,
    Subject,
    Verdict,
)

T0 = datetime(2026, 11, 29, 10, tzinfo=UTC)


def test_the_audit_json_writes_its_instants_in_whole_seconds_utc() -> None:
    started = T0 + timedelta(microseconds=999_999)
    finished = (T0 + timedelta(seconds=3, milliseconds=250)).astimezone(UTC)
    document = AuditRun(started_at=started, finished_at=finished).to_json()
    assert (document["started_at"], document["finished_at"]) == (
        "2026-11-29T10:00:00Z",
        "2026-11-29T10:00:03Z",
    )


def test_an_audit_keeps_its_fractions_of_a_second() -> None:
    audit = LabAudit(
        "pair-01",
        "111111111111",
        "222222222222",
        Verdict.CONFORMANT,
        started_at=T0,
        finished_at=T0 + timedelta(milliseconds=123),
    )
    assert audit.duration == timedelta(milliseconds=123)
    assert LabAudit("pair-01", "1", "2", Verdict.ERROR, finished_at=T0).duration is None


def test_an_actor_s_event_time_is_written_as_interface_md_shows_it() -> None:
    actor = Actor(
        arn="arn:aws:sts::222222222222:assumed-role/student/alice",
        type="AssumedRole",
        event_name="UpdateAssumeRolePolicy",
        event_time=datetime(2026, 11, 29, 14, 2, 11, 500_000, tzinfo=UTC),
        event_id="3f1c",
    )
    assert actor.to_json()["event_time"] == "2026-11-29T14:02:11Z"


def test_a_finding_s_json_has_its_check_its_code_and_its_subject() -> None:
    subject = Subject("role", "222222222222", "LambdaS3ListBuckets", "LambdaS3ListBuckets")
    finding = Finding(
        "trust_policy.widened",
        subject,
        "arn:aws:iam::222222222222:role/LambdaS3ListBuckets",
        Status.MODIFIED,
        Effect.WIDENED,
        Severity.CRITICAL,
        "trust policy lets any principal assume the role",
    )
    document = finding.to_json()
    assert (document["check"], document["code"]) == ("trust_policy", "trust_policy.widened")
    assert document["subject"] == {
        "kind": "role",
        "account": "222222222222",
        "owner": "LambdaS3ListBuckets",
        "name": "LambdaS3ListBuckets",
    }
    assert Subject.from_json(document["subject"]) == subject
    assert replace(finding, subject=None).to_json()["subject"] is None
