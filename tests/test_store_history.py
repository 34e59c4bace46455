"""The history aggregated in the database, on SQLite and PostgreSQL: every query against the same
answer computed in Python from the runs themselves."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from auditor.domain.model import LabAudit, Trigger, Verdict
from auditor.store import (
    LifecycleEvent,
    RunPoint,
    Store,
    TimeShare,
    VerdictCount,
    upgrade,
)
from auditor.store.history import ceil_hour, floor_hour
from auditor.store.migrate import alembic_config
from auditor.store.models import VerdictTotalRow

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
VERDICTS = (
    Verdict.CONFORMANT,
    Verdict.CONFORMANT,
    Verdict.CONFORMANT,
    Verdict.DRIFTED,
    Verdict.BROKEN,
    Verdict.ERROR,
)


def audit(lab: str, at: datetime, verdict: Verdict) -> LabAudit:
    return LabAudit(
        lab=lab,
        origin_account="111111111111",
        destination_account="222222222222",
        verdict=verdict,
        error="failed" if verdict is Verdict.ERROR else None,
        started_at=at,
        finished_at=at + timedelta(seconds=3),
    )


def random_history(store: Store, seed: int, labs: int = 3, runs: int = 120) -> dict[str, list[RunPoint]]:
    """Runs every few minutes with gaps of hours, verdicts in stretches, some runs at the same instant,
    recorded out of order (as a daemon's backlog is)."""
    rng = random.Random(seed)
    planned: list[LabAudit] = []
    for index in range(labs):
        at, verdict = T0 + timedelta(seconds=rng.randint(0, 600)), Verdict.CONFORMANT
        for _ in range(runs):
            if rng.random() < 0.15:
                verdict = rng.choice(VERDICTS)
            planned.append(audit(f"pair-{index:02d}", at, verdict))
            step = rng.choice([0, 37, 300, 300, 300, 301, 900, 3 * 3600])
            at += timedelta(seconds=step, microseconds=rng.randint(0, 999_999) if step else 0)
    rng.shuffle(planned)
    for one in planned:
        store.record_audit(one, Trigger.SCHEDULE)
    return store.runs_since(None)


def counts_in_python(
    runs: list[RunPoint], start: datetime, width: timedelta, since: datetime | None
) -> list[VerdictCount]:
    groups: dict[tuple[int, Verdict], list[datetime]] = {}
    for run in runs:
        if run.started_at >= max(start, since or start):
            groups.setdefault(((run.started_at - start) // width, run.verdict), []).append(run.started_at)
    return sorted(
        VerdictCount(bucket, verdict, len(times), min(times), max(times))
        for (bucket, verdict), times in groups.items()
    )


def time_in_python(runs: list[RunPoint], since: datetime | None, until: datetime) -> dict[Verdict, timedelta]:
    """Each run stands from its start to the next run's (in the order (start, id)) or `until`."""
    standing: Counter[Verdict] = Counter()
    ordered = sorted(runs, key=lambda run: (run.started_at, run.run_id))
    for position, run in enumerate(ordered):
        following = ordered[position + 1].started_at if position + 1 < len(ordered) else until
        begin, end = max(run.started_at, since or run.started_at), min(following, until)
        if end > begin:
            standing[run.verdict] += (end - begin) // timedelta(microseconds=1)
    return {verdict: timedelta(microseconds=us) for verdict, us in standing.items() if us}


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_verdicts_counted_by_bucket_in_the_database_match_the_runs(store: Store, seed: int) -> None:
    timelines = random_history(store, seed)
    end = max(run.started_at for runs in timelines.values() for run in runs)
    cases = [
        (floor_hour(T0), timedelta(hours=1), None),  # whole hours: read from the hourly totals
        (datetime(2026, 11, 29, 6, tzinfo=UTC), timedelta(hours=12), T0 + timedelta(minutes=3)),  # six-hour
        (floor_hour(T0), timedelta(hours=2), T0 + timedelta(hours=5, minutes=17)),  # a cut hour at the start
        (T0, timedelta(minutes=30), T0 + timedelta(hours=3, seconds=5)),  # finer than an hour: the runs
        (floor_hour(end) - timedelta(hours=1), timedelta(hours=1), floor_hour(end) - timedelta(minutes=30)),
    ]
    for start, width, since in cases:
        counted = store.verdict_counts(start, width, since)
        assert set(counted) == set(timelines)
        for lab, runs in timelines.items():
            assert counted[lab] == counts_in_python(runs, start, width, since), (lab, start, width, since)


@pytest.mark.parametrize("seed", [3, pytest.param(4, marks=pytest.mark.slow)])
def test_time_at_each_verdict_in_the_database_matches_the_runs(store: Store, seed: int) -> None:
    timelines = random_history(store, seed)
    end = max(run.started_at for runs in timelines.values() for run in runs)
    periods = [
        (None, end + timedelta(hours=1)),
        (T0 + timedelta(hours=2, minutes=7, seconds=3), end + timedelta(minutes=1)),
        (ceil_hour(T0 + timedelta(hours=4)), floor_hour(end) - timedelta(hours=2)),  # whole hours only
        (datetime(2026, 11, 29, 12, tzinfo=UTC), datetime(2026, 11, 30, 6, tzinfo=UTC)),  # whole spans
        (T0, end - timedelta(hours=7)),  # the last counted run's next run past the period's end
        (T0 + timedelta(hours=1, minutes=1), T0 + timedelta(hours=1, minutes=59)),  # inside one hour
    ]
    for since, until in periods:
        shares = store.time_at_verdicts(since, until)
        for lab, runs in timelines.items():
            assert shares[lab].standing == time_in_python(runs, since, until), (lab, since, until)


def test_a_time_share_weighs_each_verdict_by_how_long_it_stood(store: Store) -> None:
    store.record_audit(audit("pair-01", T0, Verdict.CONFORMANT), Trigger.SCHEDULE)
    store.record_audit(audit("pair-01", T0 + timedelta(hours=3), Verdict.BROKEN), Trigger.SCHEDULE)
    store.record_audit(audit("pair-01", T0 + timedelta(hours=4), Verdict.CONFORMANT), Trigger.SCHEDULE)
    share = store.time_at_verdicts(T0 - timedelta(hours=1), T0 + timedelta(hours=5))["pair-01"]
    # Three hours conformant, one broken, one conformant again; the hour before the first audit is unknown.
    assert share.standing == {Verdict.CONFORMANT: timedelta(hours=4), Verdict.BROKEN: timedelta(hours=1)}
    assert share.share() == pytest.approx(0.8)
    # From inside the broken hour: the verdict standing at the period's start counts from then on.
    later = store.time_at_verdicts(T0 + timedelta(hours=3, minutes=30), T0 + timedelta(hours=5))["pair-01"]
    assert later.standing == {Verdict.BROKEN: timedelta(minutes=30), Verdict.CONFORMANT: timedelta(hours=1)}
    assert TimeShare({}).share() is None


def test_prune_counts_the_remaining_runs_again(store: Store) -> None:
    timelines = random_history(store, 5, labs=2, runs=60)
    end = max(run.started_at for runs in timelines.values() for run in runs)
    cutoff = T0 + (end - T0) / 2
    store.prune(end - cutoff, end)
    after = store.runs_since(None)
    start = floor_hour(T0)
    counted = store.verdict_counts(start, timedelta(hours=1))
    for lab, runs in after.items():
        assert counted[lab] == counts_in_python(runs, start, timedelta(hours=1), None)


def test_bulk_reads_of_life_cycles_and_conformant_runs(store: Store) -> None:
    for lab in ("pair-01", "pair-02"):
        store.ensure_lab(lab, "111111111111", "222222222222", None)
    store.record_provisioned("pair-01", [], reset=False, at=T0, expires_at=None)
    store.record_provisioned("pair-02", [], reset=False, at=T0 + timedelta(minutes=1), expires_at=None)
    store.mark_expired("pair-02", T0 + timedelta(hours=2))
    store.record_audit(audit("pair-01", T0 + timedelta(minutes=5), Verdict.CONFORMANT), Trigger.SCHEDULE)
    store.record_audit(
        audit("pair-01", T0 + timedelta(hours=2, minutes=5), Verdict.CONFORMANT), Trigger.SCHEDULE
    )
    store.record_audit(
        audit("pair-01", T0 + timedelta(hours=2, minutes=10), Verdict.BROKEN), Trigger.SCHEDULE
    )
    store.record_audit(audit("pair-02", T0 + timedelta(minutes=7), Verdict.DRIFTED), Trigger.SCHEDULE)
    lifecycles = store.lifecycles()
    assert [entry.event for entry in lifecycles["pair-02"]] == [
        LifecycleEvent.PROVISIONED,
        LifecycleEvent.EXPIRED,
    ]
    assert lifecycles == {name: store.lifecycle(name) for name in ("pair-01", "pair-02")}
    assert [e.event for e in store.lifecycles(["pair-02"], since=T0 + timedelta(hours=1))["pair-02"]] == [
        LifecycleEvent.EXPIRED
    ]
    before = T0 + timedelta(hours=2, minutes=7)
    assert store.last_at_verdict_before(Verdict.CONFORMANT, before) == {
        "pair-01": T0 + timedelta(hours=2, minutes=5)
    }
    assert store.last_at_verdict_before(Verdict.CONFORMANT, T0 + timedelta(hours=1)) == {
        "pair-01": T0 + timedelta(minutes=5)
    }
    assert store.first_run_at() == T0 + timedelta(minutes=5)
    assert store.first_run_at(["pair-02"]) == T0 + timedelta(minutes=7)
    assert store.first_run_at(["nobody"]) is None


def test_the_migration_counts_the_runs_recorded_before_it(database_url: str) -> None:
    from alembic import command

    upgrade(database_url)
    store = Store.from_url(database_url)
    try:
        timelines = random_history(store, 6, labs=2, runs=40)
        expected = store.verdict_counts(floor_hour(T0), timedelta(hours=1))
        engine = create_engine(database_url)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0003")
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
            total = connection.execute(
                select(func.sum(VerdictTotalRow.runs)).where(VerdictTotalRow.span_hours == 1)
            ).scalar_one()
            assert connection.execute(text("SELECT count(*) FROM audit_runs")).scalar_one() == total
        engine.dispose()
        assert total == sum(len(runs) for runs in timelines.values())
        assert store.verdict_counts(floor_hour(T0), timedelta(hours=1)) == expected
    finally:
        store.close()
