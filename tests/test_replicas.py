"""Daemon replicas on PostgreSQL, as real `auditor daemon` processes on a moto server and a PostgreSQL
database of the test's own: the scenario of bench/replicas_bench.py (`make bench-scale`), smaller."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import URL

from bench.replicas_bench import Scenario, run_scenario

pytestmark = pytest.mark.slow

SMALL = Scenario(labs=6, replicas=3, interval=5, intervals=4, takeover=3, expiring=2, concurrency=2)


def test_three_replicas_audit_each_lab_once_per_interval_and_survive_a_kill(
    moto_server: str, postgres_server: URL, tmp_path: Path
) -> None:
    server = postgres_server.render_as_string(hide_password=False)
    outcome = run_scenario(moto_server, server, tmp_path, SMALL)
    assert outcome.problems() == []
    # Every due audit of every lab, once: the one the killed replica had under way included.
    for lab in outcome.lab_names():
        for tick in outcome.ticks:
            if outcome.expected(lab, tick) == 1:
                assert outcome.audits.get((lab, tick)) == 1, (lab, tick)
    assert all(count == 1 for count in outcome.audits.values())
    takeover = outcome.takeover_seconds()
    assert takeover is not None and takeover < 60
    # Each expiry torn down once, the resources gone; the survivors stop cleanly on SIGTERM.
    assert sorted(outcome.torn_down) == sorted(outcome.expires)
    assert all(len(times) == 1 for times in outcome.torn_down.values())
    assert outcome.roles_left == []
    assert outcome.exit_codes[0] == -9 and outcome.exit_codes[1:] == [0, 0]
