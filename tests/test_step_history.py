"""Each audit's step results in the history (migration 0008), read back over time up to an instant, on
SQLite and PostgreSQL (see db_fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from auditor.domain.model import LabAudit, Trigger, Verdict
from auditor.domain.steps import StepResult, StepStatus
from auditor.store import StepsAt, Store, make_engine
from auditor.store.models import StepResultRow

T0 = datetime(2026, 12, 10, 16, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

MISSING_ALL = (
    StepResult("dest-role", StepStatus.MISSING, "no role LambdaS3ListBuckets in account 222222222222"),
    StepResult("dest-trust", StepStatus.MISSING, "no role to trust account 111111111111"),
)
ROLE_DONE = (
    StepResult("dest-role", StepStatus.DONE),
    StepResult(
        "dest-trust", StepStatus.WRONG, "found a trust for everyone; the guide trusts account 111111111111"
    ),
)
BOTH_DONE = (StepResult("dest-role", StepStatus.DONE), StepResult("dest-trust", StepStatus.HARDENED))


def audit(
    lab: str, at: datetime, steps: tuple[StepResult, ...], *, finished: bool = True, error: str | None = None
) -> LabAudit:
    return LabAudit(
        lab=lab,
        origin_account="111111111111",
        destination_account="222222222222",
        verdict=Verdict.ERROR if error else Verdict.DRIFTED,
        error=error,
        started_at=at,
        finished_at=at + timedelta(seconds=20) if finished else None,
        requests=9,
        steps=steps,
    )


@pytest.fixture
def engine(database_url: str, store: Store) -> Iterator[Engine]:
    opened = make_engine(database_url)
    yield opened
    opened.dispose()


def test_each_audits_steps_are_recorded_in_order_and_read_back_by_lab_oldest_first(store: Store) -> None:
    store.record_audit(audit("pair-01", T0 + 10 * MINUTE, ROLE_DONE), Trigger.EVENT)
    store.record_audit(audit("pair-01", T0, MISSING_ALL), Trigger.SCHEDULE)
    store.record_audit(audit("pair-02", T0 + MINUTE, BOTH_DONE), Trigger.SCHEDULE)
    store.record_audit(audit("pair-01", T0 + 20 * MINUTE, BOTH_DONE), Trigger.SCHEDULE)

    history = store.step_history(None, until=T0 + timedelta(hours=1))

    seconds = timedelta(seconds=20)
    assert history == {
        "pair-01": [
            StepsAt(T0 + seconds, MISSING_ALL),
            StepsAt(T0 + 10 * MINUTE + seconds, ROLE_DONE),
            StepsAt(T0 + 20 * MINUTE + seconds, BOTH_DONE),
        ],
        "pair-02": [StepsAt(T0 + MINUTE + seconds, BOTH_DONE)],
    }
    at, steps = history["pair-01"][0]  # a plain (instant, results) pair as well
    assert (at.tzinfo, steps[0].status) == (UTC, StepStatus.MISSING)


def test_nothing_recorded_after_the_instant_is_read(store: Store) -> None:
    store.record_audit(audit("pair-01", T0, MISSING_ALL), Trigger.SCHEDULE)
    store.record_audit(audit("pair-01", T0 + 10 * MINUTE, BOTH_DONE), Trigger.SCHEDULE)

    # The second run started before the instant but ended after it: it is not yet evidence.
    until = T0 + 10 * MINUTE + timedelta(seconds=5)
    assert store.step_history(["pair-01"], until=until) == {
        "pair-01": [StepsAt(T0 + timedelta(seconds=20), MISSING_ALL)]
    }
    # An instant is inclusive: a run that ended at exactly it counts.
    exactly = T0 + 10 * MINUTE + timedelta(seconds=20)
    assert [entry.at for entry in store.step_history(["pair-01"], until=exactly)["pair-01"]][-1] == exactly
    assert store.step_history(["pair-01"], until=T0) == {"pair-01": []}


def test_a_run_with_no_end_counts_at_its_start(store: Store) -> None:
    store.record_audit(audit("pair-01", T0, ROLE_DONE, finished=False), Trigger.MANUAL)

    assert store.step_history(["pair-01"], until=T0) == {"pair-01": [StepsAt(T0, ROLE_DONE)]}


def test_runs_without_steps_are_left_out_and_every_selected_lab_appears(store: Store) -> None:
    store.record_audit(audit("pair-01", T0, ()), Trigger.SCHEDULE)  # a class the provisioner builds
    store.record_audit(
        audit("pair-01", T0 + MINUTE, (), error="AWS throttled sts:AssumeRole"), Trigger.SCHEDULE
    )
    store.record_audit(audit("pair-02", T0, BOTH_DONE), Trigger.SCHEDULE)
    store.record_audit(audit("pair-03", T0, BOTH_DONE), Trigger.SCHEDULE)

    history = store.step_history(["pair-01", "pair-02", "pair-09"], until=T0 + timedelta(hours=1))

    assert history == {"pair-01": [], "pair-02": [StepsAt(T0 + timedelta(seconds=20), BOTH_DONE)]}


def test_non_ascii_feedback_and_long_step_ids_are_kept(store: Store) -> None:
    steps = (
        StepResult("origin-policy", StepStatus.WRONG, "« Lambda-Assume-Roles-Policy » n'autorise pas ça"),
    )
    store.record_audit(audit("pair-01", T0, steps), Trigger.SCHEDULE)

    assert store.step_history(["pair-01"], until=T0 + MINUTE)["pair-01"][0].steps == steps


def test_the_steps_of_a_pruned_run_go_with_it(store: Store, engine: Engine) -> None:
    store.record_audit(audit("pair-01", T0, MISSING_ALL), Trigger.SCHEDULE)
    store.record_audit(audit("pair-01", T0 + timedelta(days=10), BOTH_DONE), Trigger.SCHEDULE)

    assert store.prune(keep=timedelta(days=1), now=T0 + timedelta(days=10)) == 1

    with engine.connect() as connection:
        left = connection.execute(select(func.count()).select_from(StepResultRow)).scalar_one()
    assert left == len(BOTH_DONE)
    assert [entry.steps for entry in store.step_history(None, until=T0 + timedelta(days=11))["pair-01"]] == [
        BOTH_DONE
    ]


def test_a_torn_down_lab_records_no_steps(store: Store) -> None:
    store.ensure_lab("pair-01", "111111111111", "222222222222", None)
    store.record_torn_down("pair-01", T0)

    assert store.record_audit(audit("pair-01", T0 + MINUTE, BOTH_DONE), Trigger.SCHEDULE) is None
    assert store.step_history(["pair-01"], until=T0 + timedelta(hours=1)) == {"pair-01": []}
