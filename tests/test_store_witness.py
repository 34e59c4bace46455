"""A finding's witness and actor (migration 0003), and its code and subject (migration 0007), are kept in
the history, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from auditor.domain.model import (
    Actor,
    Effect,
    Finding,
    LabAudit,
    Severity,
    Side,
    Status,
    Subject,
    Trigger,
    Verdict,
    Witness,
)
from auditor.store import Store
from auditor.store.digest import prepare_findings
from auditor.store.engine import make_engine
from auditor.store.models import DocumentRow

ROLE = "arn:aws:iam::200000000001:role/LambdaS3ListBuckets"
WITNESS = Witness(
    Side.ACTUAL,
    "sts:AssumeRole",
    ROLE,
    principal="arn:aws:iam::999999999999:root",
    context={"aws:PrincipalAccount": "999999999999", "aws:SourceIp": ("203.0.113.5", "203.0.113.6")},
)
ACTOR = Actor(
    "arn:aws:sts::200000000001:assumed-role/student/alice",
    "AssumedRole",
    "UpdateAssumeRolePolicy",
    datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC),
    "3f1c",
    "203.0.113.5",
    "console.amazonaws.com",
    session_issuer="arn:aws:iam::200000000001:role/student",
)
SUBJECT = Subject("role", "200000000001", "LambdaS3ListBuckets", "LambdaS3ListBuckets")
PLAIN = Finding(
    "trust_policy.widened", SUBJECT, ROLE, Status.MODIFIED, Effect.WIDENED, Severity.CRITICAL, "opened"
)
EXPLAINED = replace(PLAIN, witness=WITNESS, changed_by=ACTOR)


def audit(at: datetime, *findings: Finding) -> LabAudit:
    return LabAudit(
        "pair-01",
        "100000000001",
        "200000000001",
        Verdict.DRIFTED,
        findings,
        started_at=at,
        finished_at=at,
    )


def test_a_witness_and_an_actor_come_back_as_they_were_recorded(store: Store) -> None:
    store.record_audit(audit(datetime.now(UTC), EXPLAINED), Trigger.EVENT)
    (finding,) = store.latest_runs()["pair-01"].findings
    assert finding.witness == WITNESS
    assert finding.changed_by == ACTOR
    assert finding.to_json() == EXPLAINED.to_json()


def test_a_finding_without_them_comes_back_without_them(store: Store) -> None:
    store.record_audit(audit(datetime.now(UTC), PLAIN), Trigger.SCHEDULE)
    (finding,) = store.latest_runs()["pair-01"].findings
    assert (finding.witness, finding.changed_by) == (None, None)


def test_a_set_without_them_has_the_digest_of_its_other_fields_only() -> None:
    prepared = prepare_findings([PLAIN])
    assert prepared is not None
    # Pinned: the same findings get the same digest in every version from revision 0007 on (which added
    # the code and the subject, so a set recorded before is stored once more, not shared).
    assert prepared.digest == "73415701f8b5447167c6a9e0304841e4dd59953f293252e5c31e0252b68ec607"
    explained = prepare_findings([EXPLAINED])
    assert explained is not None and explained.digest != prepared.digest


def test_the_code_and_the_subject_are_part_of_a_set_s_content() -> None:
    digests = {
        prepared.digest
        for finding in (
            PLAIN,
            replace(PLAIN, code="trust_policy.changed"),
            replace(PLAIN, subject=replace(SUBJECT, account="200000000002")),
            replace(PLAIN, subject=None),
        )
        if (prepared := prepare_findings([finding])) is not None
    }
    assert len(digests) == 4


def test_a_code_and_a_subject_come_back_as_they_were_recorded(store: Store) -> None:
    store.record_audit(audit(datetime.now(UTC), PLAIN), Trigger.SCHEDULE)
    (finding,) = store.latest_runs()["pair-01"].findings
    assert (finding.check, finding.code, finding.subject) == ("trust_policy", "trust_policy.widened", SUBJECT)
    assert finding == PLAIN


def test_prune_keeps_the_documents_of_the_latest_run_and_drops_those_of_pruned_ones(
    store: Store, database_url: str
) -> None:
    now = datetime.now(UTC)
    other_actor = replace(ACTOR, event_id="older", source_ip="198.51.100.1")
    store.record_audit(
        audit(now - timedelta(days=10), replace(EXPLAINED, changed_by=other_actor)), Trigger.EVENT
    )
    store.record_audit(audit(now, EXPLAINED), Trigger.EVENT)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            before = connection.execute(select(func.count()).select_from(DocumentRow)).scalar_one()
        store.prune(timedelta(days=1), now)
        with engine.connect() as connection:
            after = connection.execute(select(func.count()).select_from(DocumentRow)).scalar_one()
    finally:
        engine.dispose()
    assert after == before - 1  # the older actor's document went with its run; the witness is shared
    (finding,) = store.latest_runs()["pair-01"].findings
    assert (finding.witness, finding.changed_by) == (WITNESS, ACTOR)
