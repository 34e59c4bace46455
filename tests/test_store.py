"""The history store, on SQLite and PostgreSQL (see db_fixtures.py)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from auditor.domain.model import (
    Effect,
    Finding,
    InvokeResult,
    LabAudit,
    Severity,
    Status,
    Subject,
    Trigger,
    Verdict,
    verdict_of,
)
from auditor.store import (
    DatabaseUnavailable,
    LabState,
    LifecycleEvent,
    Outcome,
    Store,
    UnknownLab,
    canonical_order,
    make_engine,
    upgrade,
)
from auditor.store.models import AuditRunRow, Base, InvokeResultRow
from auditor.store.store import audit_times
from conftest import subject_of_role

ORIGIN, DESTINATION = "111111111111", "222222222222"
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
FIVE_MINUTES = timedelta(minutes=5)
LEASE = timedelta(minutes=15)
ROLE_ARN = f"arn:aws:iam::{DESTINATION}:role/LambdaS3ListBuckets"

EXPECTED_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ORIGIN}:role/LambdaCrossAccountRole"},
            "Action": "sts:AssumeRole",
        }
    ],
}
OK_INVOKE = InvokeResult(ok=True, cause="ok", detail="", duration_ms=420)


def trust_finding(principal: str = "*") -> Finding:
    widened = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}],
    }
    return Finding(
        code="trust_policy.widened",
        subject=subject_of_role(ROLE_ARN),
        resource=ROLE_ARN,
        status=Status.MODIFIED,
        effect=Effect.WIDENED,
        severity=Severity.CRITICAL,
        message=f"trust policy lets {principal} assume the role",
        expected=EXPECTED_TRUST,
        actual=widened,
    )


def failed_invoke_finding() -> Finding:
    return Finding(
        code="invoke.failed",
        subject=Subject("function", "111111111111", "ListBuckets", "ListBuckets"),
        resource="arn:aws:lambda:us-east-1:111111111111:function:ListBuckets",
        status=Status.FAILED,
        effect=Effect.NONE,
        severity=Severity.HIGH,
        message="the function could not assume the role",
        breaks_lab=True,
    )


def info_finding() -> Finding:
    return Finding(
        code="lambda_config.modified",
        subject=Subject("function", "111111111111", "ListBuckets", "ListBuckets"),
        resource="arn:aws:lambda:us-east-1:111111111111:function:ListBuckets",
        status=Status.MODIFIED,
        effect=Effect.NONE,
        severity=Severity.INFO,
        message="memory size differs",
        expected={},
        actual=[128, "MB", None, 1.5, True],
    )


def lab_audit(
    lab: str = "pair-01",
    *,
    at: datetime = T0,
    findings: Sequence[Finding] = (),
    invoke: InvokeResult | None = OK_INVOKE,
    verdict: Verdict | None = None,
    error: str | None = None,
) -> LabAudit:
    return LabAudit(
        lab=lab,
        origin_account=ORIGIN,
        destination_account=DESTINATION,
        verdict=verdict or verdict_of(tuple(findings)),
        findings=tuple(findings),
        invoke=invoke,
        error=error,
        started_at=at,
        finished_at=at + timedelta(seconds=3),
        requests=17,
    )


@pytest.fixture
def row_counts(store: Store, database_url: str) -> Iterator[Callable[[], dict[str, int]]]:
    """How many rows each table holds, read on a connection of its own."""
    engine = make_engine(database_url)

    def counts() -> dict[str, int]:
        with engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in Base.metadata.sorted_tables
            }

    yield counts
    engine.dispose()


# ---------------------------------------------------------------------------------------------- audits


def test_a_recorded_audit_reads_back_with_equal_findings_and_invoke_result(store: Store) -> None:
    findings = (info_finding(), failed_invoke_finding(), trust_finding())
    audit = lab_audit(findings=findings, invoke=InvokeResult(False, "assume_denied", "AccessDenied", 812))

    run_id = store.record_audit(audit, Trigger.EVENT)

    latest = store.latest_runs()["pair-01"]
    assert latest.run_id == run_id
    assert latest.findings == canonical_order(findings)
    assert latest.findings[0] == trust_finding()  # most severe first
    assert [f.breaks_lab for f in latest.findings] == [False, True, False]
    assert latest.invoke == InvokeResult(False, "assume_denied", "AccessDenied", 812)
    assert (latest.trigger, latest.verdict, latest.requests, latest.error) == (
        Trigger.EVENT,
        Verdict.BROKEN,
        17,
        None,
    )
    assert latest.started_at == T0
    assert latest.finished_at == T0 + timedelta(seconds=3)
    assert latest.started_at.tzinfo is UTC


def test_an_errored_audit_without_findings_or_invoke_keeps_its_error(store: Store) -> None:
    store.record_audit(
        lab_audit(verdict=Verdict.ERROR, invoke=None, error="AccessDenied on GetRole"), Trigger.MANUAL
    )

    latest = store.latest_runs(["pair-01"])["pair-01"]
    assert (latest.verdict, latest.error, latest.invoke, latest.findings) == (
        Verdict.ERROR,
        "AccessDenied on GetRole",
        None,
        (),
    )


def test_a_recorded_audit_keeps_its_fractions_of_a_second(store: Store) -> None:
    at = T0 + timedelta(microseconds=123_456)
    store.record_audit(lab_audit(at=at), Trigger.SCHEDULE)
    latest = store.latest_runs()["pair-01"]
    assert (latest.started_at, latest.finished_at) == (at, at + timedelta(seconds=3))


def test_audit_times_fall_back_when_the_audit_did_not_note_its_start() -> None:
    audit = LabAudit("pair-01", ORIGIN, DESTINATION, Verdict.ERROR, finished_at=T0 + timedelta(seconds=3))
    assert audit_times(audit, now=T0) == (T0 + timedelta(seconds=3), T0 + timedelta(seconds=3))
    assert audit_times(LabAudit("pair-01", ORIGIN, DESTINATION, Verdict.ERROR), now=T0) == (T0, None)


def test_unchanged_results_add_runs_but_no_documents_or_findings(
    store: Store, row_counts: Callable[[], dict[str, int]]
) -> None:
    drifted = (trust_finding(), info_finding())
    store.record_audit(lab_audit(findings=drifted), Trigger.SCHEDULE)
    first = row_counts()

    for step in range(1, 6):
        # Findings in another order are the same result.
        findings = drifted if step % 2 else tuple(reversed(drifted))
        store.record_audit(lab_audit(at=T0 + step * FIVE_MINUTES, findings=findings), Trigger.SCHEDULE)

    after = row_counts()
    assert after["audit_runs"] == first["audit_runs"] + 5
    assert after["invoke_results"] == first["invoke_results"] + 5
    for table in ("documents", "finding_sets", "findings"):
        assert after[table] == first[table], table


def test_a_changed_result_stores_only_the_documents_it_has_not_seen(
    store: Store, row_counts: Callable[[], dict[str, int]]
) -> None:
    store.record_audit(lab_audit(findings=[trust_finding("*")]), Trigger.SCHEDULE)
    before = row_counts()

    store.record_audit(
        lab_audit(at=T0 + FIVE_MINUTES, findings=[trust_finding("arn:aws:iam::999999999999:root")]),
        Trigger.SCHEDULE,
    )

    after = row_counts()
    assert after["finding_sets"] == before["finding_sets"] + 1
    assert after["documents"] == before["documents"] + 1  # the new actual policy; the expected one is shared


def test_a_conformant_run_stores_no_finding_set(
    store: Store, row_counts: Callable[[], dict[str, int]]
) -> None:
    store.record_audit(lab_audit(), Trigger.SCHEDULE)

    counts = row_counts()
    assert (counts["audit_runs"], counts["finding_sets"], counts["findings"], counts["documents"]) == (
        1,
        0,
        0,
        0,
    )


def test_a_failure_in_the_middle_of_a_write_leaves_nothing_of_the_run(
    store: Store, row_counts: Callable[[], dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store.record_audit(lab_audit("pair-01"), Trigger.SCHEDULE)
    before = row_counts()

    def crash(*_args: Any) -> None:
        raise RuntimeError("the process dies here")

    # The invoke result is written last, after the lab, the documents, the finding set and the run.
    monkeypatch.setattr("auditor.store.store._insert_invoke_result", crash)
    with pytest.raises(RuntimeError):
        store.record_audit(lab_audit("pair-02", findings=[trust_finding()]), Trigger.SCHEDULE)

    assert row_counts() == before
    assert "pair-02" not in store.runs_since(None)


def test_a_finding_whose_document_is_not_json_is_refused_and_nothing_is_stored(
    store: Store, row_counts: Callable[[], dict[str, int]]
) -> None:
    unserialisable = Finding(
        "inline_policy.changed",
        Subject("inline_policy", DESTINATION, "LambdaS3ListBuckets", "odd"),
        f"{ROLE_ARN}/inline-policy/odd",
        Status.MODIFIED,
        Effect.CHANGED,
        Severity.LOW,
        "odd",
        actual={1, 2},
    )

    with pytest.raises(ValueError, match="actual document of the inline_policy finding"):
        store.record_audit(lab_audit(findings=[trust_finding(), unserialisable]), Trigger.SCHEDULE)

    assert set(row_counts().values()) == {0}


def test_latest_run_is_the_latest_started_not_the_latest_recorded(store: Store) -> None:
    store.record_audit(lab_audit(at=T0 + FIVE_MINUTES), Trigger.SCHEDULE)
    store.record_audit(lab_audit(at=T0, findings=[trust_finding()]), Trigger.MANUAL)

    assert store.latest_runs()["pair-01"].verdict == Verdict.CONFORMANT


# ------------------------------------------------------------------------------------- concurrency


class StartLine(Protocol):
    """A threading or multiprocessing barrier: every writer starts at once."""

    def wait(self, timeout: float | None = None) -> int: ...


def _write_runs(url: str, lab: str, count: int, start: StartLine) -> None:
    """A writer (thread or process): runs alternating between two results, shared with other writers."""
    store = Store.from_url(url)
    try:
        start.wait(timeout=60)
        for step in range(count):
            findings = [trust_finding()] if step % 2 else [trust_finding(), info_finding()]
            store.record_audit(
                lab_audit(lab, at=T0 + step * FIVE_MINUTES, findings=findings), Trigger.SCHEDULE
            )
    finally:
        store.close()


@pytest.mark.slow  # processes of their own
def test_two_writer_processes_at_once_lose_no_run(store: Store, database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [
        context.Process(target=_write_runs, args=(database_url, lab, 30, start))
        for lab in ("pair-01", "pair-02")
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)

    assert [writer.exitcode for writer in writers] == [0, 0]
    timelines = store.runs_since(None)
    assert {lab: len(points) for lab, points in timelines.items()} == {"pair-01": 30, "pair-02": 30}


def test_writer_threads_sharing_one_store_lose_no_run(store: Store, database_url: str) -> None:
    labs = [f"pair-{n:02}" for n in range(1, 5)]
    start = threading.Barrier(len(labs))
    with ThreadPoolExecutor(len(labs)) as pool:
        for done in [pool.submit(_write_runs, database_url, lab, 15, start) for lab in labs]:
            done.result()

    assert [len(points) for points in store.runs_since(None).values()] == [15] * len(labs)


# ---------------------------------------------------------------------------------------- teardown


def test_only_one_of_two_simultaneous_lease_claims_wins(store: Store) -> None:
    labs = [f"pair-{n:02}" for n in range(1, 6)]
    for lab in labs:
        store.ensure_lab(lab, ORIGIN, DESTINATION, None)

    def race(lab: str) -> list[bool]:
        start = threading.Barrier(2)

        def claim(owner: str) -> bool:
            start.wait(timeout=10)
            return store.claim_lease(lab, owner, "teardown", T0, LEASE) is not None

        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(claim, ["daemon", "cli"]))

    for lab in labs:
        assert sorted(race(lab)) == [False, True], lab


def test_a_lease_blocks_others_until_it_lapses_unrenewed(store: Store) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, None)
    assert store.claim_lease("pair-01", "daemon", "audit", T0, LEASE) is LabState.PLANNED

    assert store.claim_lease("pair-01", "cli", "provision", T0 + LEASE - timedelta(seconds=1), LEASE) is None
    assert store.renew_leases("daemon", ["pair-01"], T0 + LEASE - timedelta(seconds=1)) == {"pair-01"}
    assert store.claim_lease("pair-01", "cli", "provision", T0 + LEASE, LEASE) is None  # renewed: still held
    assert store.claim_lease("pair-01", "cli", "provision", T0 + 2 * LEASE, LEASE) is LabState.PLANNED
    assert store.renew_leases("daemon", ["pair-01"], T0 + 2 * LEASE) == set()  # lost to the cli


def test_a_lease_names_its_holder_purpose_and_start_and_is_given_back_by_its_holder_only(
    store: Store,
) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, None)
    store.claim_lease("pair-01", "host-a:4321", "teardown", T0, LEASE)
    lease = store.lease_of("pair-01")
    assert lease is not None
    assert (lease.owner, lease.purpose, lease.since) == ("host-a:4321", "teardown", T0)

    store.release_leases("someone-else:1", ["pair-01"])
    assert store.lease_of("pair-01") is not None
    store.release_leases("host-a:4321", ["pair-01"])
    assert store.lease_of("pair-01") is None
    assert store.claim_lease("pair-01", "cli", "audit", T0 + timedelta(seconds=1), LEASE) is not None


def test_a_holder_known_to_be_gone_loses_its_fresh_lease(store: Store) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, None)
    store.claim_lease("pair-01", "job:7", "teardown", T0, LEASE)
    assert store.claim_lease("pair-01", "job:8", "teardown", T0, LEASE) is None
    assert store.claim_lease("pair-01", "job:7", "teardown", T0, LEASE, take_over_from=("job:7",)) is not None


def test_teardown_events_and_when_a_lab_was_torn_down(store: Store) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, None)
    store.mark_teardown_started("pair-01", "daemon", T0)
    store.record_teardown_failed("pair-01", "DeleteRole: AccessDenied", T0 + timedelta(seconds=5))
    assert store.torn_down_since("pair-01", T0) is None
    store.mark_teardown_started("pair-01", "cli", T0 + timedelta(seconds=6))
    store.record_torn_down("pair-01", T0 + timedelta(seconds=9))
    assert store.torn_down_since("pair-01", T0) == T0 + timedelta(seconds=9)
    assert store.torn_down_since("pair-01", T0 + timedelta(seconds=10)) is None
    assert store.status()[0].torn_down_at == T0 + timedelta(seconds=9)

    events = [(e.event, e.outcome) for e in store.lifecycle("pair-01")]
    assert events == [
        (LifecycleEvent.TEARDOWN_STARTED, Outcome.STARTED),
        (LifecycleEvent.TEARDOWN_FAILED, Outcome.FAILED),
        (LifecycleEvent.TEARDOWN_STARTED, Outcome.STARTED),
        (LifecycleEvent.TORN_DOWN, Outcome.OK),
    ]


def test_an_audit_of_a_torn_down_lab_is_not_recorded_and_gives_its_lease_back(store: Store) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, None)
    store.record_torn_down("pair-01", T0)
    store.claim_lease("pair-01", "daemon", "audit", T0 + timedelta(seconds=1), LEASE)
    broken = LabAudit("pair-01", ORIGIN, DESTINATION, Verdict.BROKEN, started_at=T0, finished_at=T0)

    assert store.record_audit(broken, Trigger.SCHEDULE, release_lease_of="daemon") is None
    assert store.runs_since(None, ["pair-01"]).get("pair-01", []) == []
    assert store.lease_of("pair-01") is None


def test_a_claim_on_an_unknown_lab_fails_and_lifecycle_writes_refuse_it(store: Store) -> None:
    assert store.claim_lease("nobody", "daemon", "audit", T0, LEASE) is None
    with pytest.raises(UnknownLab):
        store.record_torn_down("nobody", T0)


# --------------------------------------------------------------------------------------- lifecycle


def test_provisioning_records_resources_state_expiry_and_events(
    store: Store, row_counts: Callable[[], dict[str, int]]
) -> None:
    resources = [
        ("iam_role", DESTINATION, ROLE_ARN),
        ("lambda_function", ORIGIN, "arn:aws:lambda:us-east-1:111111111111:function:ListBuckets"),
    ]
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, None)
    store.mark_provisioning("pair-01", T0)
    assert store.status()[0].state == LabState.PROVISIONING

    store.record_provisioned("pair-01", resources, reset=False, at=T0, expires_at=T0 + timedelta(hours=8))
    store.record_provisioned("pair-01", resources, reset=True, at=T0 + timedelta(hours=1), expires_at=None)
    store.record_torn_down("pair-01", T0 + timedelta(hours=8))
    store.record_provision_failed("pair-01", "CreateRole: LimitExceeded", T0 + timedelta(hours=9))

    status = store.status()[0]
    assert (status.state, status.expires_at) == (LabState.FAILED, T0 + timedelta(hours=8))
    assert row_counts()["lab_resources"] == 2  # a reset does not record the same resources again
    assert [(e.at, e.event, e.outcome) for e in store.lifecycle("pair-01")] == [
        (T0, LifecycleEvent.PROVISIONED, Outcome.OK),
        (T0 + timedelta(hours=1), LifecycleEvent.RESET, Outcome.OK),
        (T0 + timedelta(hours=8), LifecycleEvent.TORN_DOWN, Outcome.OK),
        (T0 + timedelta(hours=9), LifecycleEvent.PROVISION_FAILED, Outcome.FAILED),
    ]
    assert store.lifecycle("pair-01")[-1].detail == "CreateRole: LimitExceeded"


def test_ensure_lab_updates_accounts_but_keeps_state_and_a_known_expiry(store: Store) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, None)
    store.record_provisioned("pair-01", [], reset=False, at=T0, expires_at=T0 + timedelta(hours=8))

    store.ensure_lab("pair-01", ORIGIN, "333333333333", None)
    status = store.status()[0]
    assert (status.state, status.expires_at, status.destination) == (
        LabState.ACTIVE,
        T0 + timedelta(hours=8),
        "333333333333",
    )

    store.ensure_lab("pair-01", ORIGIN, DESTINATION, T0 + timedelta(days=2))
    assert store.status()[0].expires_at == T0 + timedelta(days=2)


def test_ensure_labs_registers_a_class_at_once_as_ensure_lab_does_each(store: Store) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, T0)
    store.record_provisioned("pair-01", [], reset=False, at=T0, expires_at=T0 + timedelta(hours=8))

    store.ensure_labs(
        [
            ("pair-01", ORIGIN, "333333333333", None),
            ("pair-02", "444444444444", "555555555555", T0 + timedelta(days=1)),
            ("pair-03", "666666666666", "777777777777", None),
            ("pair-03", "666666666666", "888888888888", T0),  # named twice: the last one counts
        ]
    )
    store.ensure_labs([])

    assert [(s.name, s.state, s.destination, s.expires_at) for s in store.status()] == [
        ("pair-01", LabState.ACTIVE, "333333333333", T0 + timedelta(hours=8)),
        ("pair-02", LabState.PLANNED, "555555555555", T0 + timedelta(days=1)),
        ("pair-03", LabState.PLANNED, "888888888888", T0),
    ]


def test_expired_labs_are_past_expiry_and_not_torn_down(store: Store) -> None:
    store.ensure_lab("past", ORIGIN, DESTINATION, T0 - timedelta(minutes=1))
    store.ensure_lab("now", "333333333333", "444444444444", T0)
    store.ensure_lab("future", "555555555555", "666666666666", T0 + timedelta(minutes=1))
    store.ensure_lab("forever", "777777777777", "888888888888", None)
    store.ensure_lab("gone", "999999999999", "000000000000", T0 - timedelta(days=1))
    store.record_torn_down("gone", T0 - timedelta(hours=1))

    assert store.expired_labs(T0) == ["now", "past"]

    assert store.mark_expired("past", T0)
    assert not store.mark_expired("past", T0)
    assert not store.mark_expired("gone", T0)
    assert [s.state for s in store.status() if s.name == "past"] == [LabState.EXPIRED]
    assert [e.event for e in store.lifecycle("past")] == [LifecycleEvent.EXPIRED]


def test_status_gives_each_lab_its_state_expiry_and_last_verdict(store: Store) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, T0 + timedelta(hours=8))
    store.ensure_lab("pair-02", "333333333333", "444444444444", None)
    store.record_audit(lab_audit("pair-01", at=T0), Trigger.SCHEDULE)
    store.record_audit(
        lab_audit("pair-01", at=T0 + FIVE_MINUTES, findings=[trust_finding()]), Trigger.SCHEDULE
    )

    first, second = store.status()
    assert (first.name, first.state, first.expires_at, first.last_verdict, first.last_audit_at) == (
        "pair-01",
        LabState.PLANNED,
        T0 + timedelta(hours=8),
        Verdict.DRIFTED,
        T0 + FIVE_MINUTES,
    )
    assert (first.origin, first.destination) == (ORIGIN, DESTINATION)
    assert (second.name, second.last_verdict, second.last_audit_at) == ("pair-02", None, None)


def test_naive_datetimes_are_refused(store: Store) -> None:
    store.ensure_lab("pair-01", ORIGIN, DESTINATION, None)
    with pytest.raises(StatementError, match="naive datetime"):
        store.claim_lease("pair-01", "daemon", "audit", datetime(2026, 11, 29, 10, 0), LEASE)


# ------------------------------------------------------------------------------------------ reports


def test_timelines_and_conformance_queries(store: Store) -> None:
    verdicts = ["broken", "drifted", "conformant", "conformant", "drifted", "conformant"]
    for step, verdict in enumerate(verdicts):
        findings = {"broken": [failed_invoke_finding()], "drifted": [trust_finding()], "conformant": []}[
            verdict
        ]
        store.record_audit(lab_audit(at=T0 + step * FIVE_MINUTES, findings=findings), Trigger.SCHEDULE)
    store.record_audit(lab_audit("pair-02", at=T0), Trigger.MANUAL)

    timelines = store.runs_since(T0 + FIVE_MINUTES, ["pair-01"])
    assert list(timelines) == ["pair-01"]
    assert [p.verdict.value for p in timelines["pair-01"]] == verdicts[1:]
    assert [p.started_at for p in timelines["pair-01"]] == [T0 + n * FIVE_MINUTES for n in range(1, 6)]
    assert store.runs_since(None)["pair-02"][0].trigger == Trigger.MANUAL
    changes = store.verdict_changes(None, ["pair-01"])["pair-01"]
    assert [(p.started_at, p.verdict.value) for p in changes] == [
        (T0 + n * FIVE_MINUTES, verdicts[n]) for n in (0, 1, 2, 4, 5)
    ]
    assert (
        store.verdict_changes(T0 + 3 * FIVE_MINUTES, ["pair-01"])["pair-01"][0].verdict == Verdict.CONFORMANT
    )

    assert store.first_conformant_at("pair-01") == T0 + 2 * FIVE_MINUTES
    assert store.last_conformant_at("pair-01") == T0 + 5 * FIVE_MINUTES
    assert store.conformant_share("pair-01", None) == pytest.approx(3 / 6)
    assert store.conformant_share("pair-01", T0 + 3 * FIVE_MINUTES) == pytest.approx(2 / 3)
    assert store.conformant_share("nobody", None) is None
    assert store.first_conformant_at("nobody") is None


# ---------------------------------------------------------------------------------------- retention


def test_prune_deletes_old_runs_but_keeps_each_labs_latest_and_the_lifecycle(
    store: Store, row_counts: Callable[[], dict[str, int]]
) -> None:
    now = T0 + timedelta(days=30)
    store.record_audit(lab_audit("pair-01", at=T0, findings=[trust_finding("*")]), Trigger.SCHEDULE)
    store.record_audit(
        lab_audit("pair-01", at=T0 + FIVE_MINUTES, findings=[info_finding()]), Trigger.SCHEDULE
    )
    store.record_audit(
        lab_audit("pair-01", at=now - timedelta(hours=1), findings=[trust_finding("?")]), Trigger.SCHEDULE
    )
    store.record_audit(lab_audit("pair-02", at=T0, findings=[info_finding()]), Trigger.SCHEDULE)
    store.record_provisioned("pair-01", [], reset=False, at=T0 - timedelta(days=1), expires_at=None)

    assert store.prune(keep=timedelta(days=7), now=now) == 2

    timelines = store.runs_since(None)
    assert [p.started_at for p in timelines["pair-01"]] == [now - timedelta(hours=1)]
    assert [p.started_at for p in timelines["pair-02"]] == [T0]  # old, but its lab's latest
    assert len(store.lifecycle("pair-01")) == 1
    counts = row_counts()
    assert (counts["audit_runs"], counts["invoke_results"]) == (2, 2)
    # Left: the sets {trust "?"} and {info}; documents: expected trust, actual "?", info's {} and list.
    assert (counts["finding_sets"], counts["findings"], counts["documents"]) == (2, 2, 4)
    assert store.latest_runs()["pair-01"].findings == (trust_finding("?"),)


def test_pruned_runs_take_their_invoke_results_with_them(store: Store, database_url: str) -> None:
    store.record_audit(lab_audit(at=T0), Trigger.SCHEDULE)
    store.record_audit(lab_audit(at=T0 + timedelta(days=10)), Trigger.SCHEDULE)
    store.prune(keep=timedelta(days=1), now=T0 + timedelta(days=10))

    engine = make_engine(database_url)
    with engine.connect() as connection:
        kept = connection.execute(select(AuditRunRow.id)).scalars().all()
        invoked = connection.execute(select(InvokeResultRow.run_id)).scalars().all()
    engine.dispose()
    assert kept == invoked


# ------------------------------------------------------------------------------------- availability


def test_an_unreachable_database_raises_database_unavailable_without_the_password() -> None:
    url = "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/x"
    store = Store.from_url(url)

    with pytest.raises(DatabaseUnavailable) as raised:
        store.status()
    with pytest.raises(DatabaseUnavailable) as raised_by_upgrade:
        upgrade(url)

    for exc in (raised.value, raised_by_upgrade.value):
        assert "s3cret-pw" not in str(exc)
        assert "127.0.0.1:1" in str(exc)
    store.close()


def test_an_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Any) -> None:
    with pytest.raises(DatabaseUnavailable, match="unable to open"):
        Store.from_url(f"sqlite:///{tmp_path / 'missing-dir' / 'auditor.db'}").status()


def test_an_in_memory_store_is_migrated_on_open_and_shared_by_threads() -> None:
    store = Store.from_url("sqlite://")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda lab: store.record_audit(lab_audit(lab), Trigger.MANUAL), ["pair-01", "pair-02"]))

    assert [status.name for status in store.status()] == ["pair-01", "pair-02"]
    store.close()
