"""The watch's memory at start: each lab's standing from the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from receiver import running_receiver
from test_web import lab_audit, opened_trust

from auditor.daemon.notify import ABANDONED_PREFIX, open_watch
from auditor.domain.config import Config, NotifyEvent, NotifySettings
from auditor.domain.model import Trigger, Verdict
from auditor.store import Store
from conftest import make_config, pair

ABANDONED = f"{ABANDONED_PREFIX} the daemon stopped before the audit finished"


def config_notifying(url: str) -> Config:
    return replace(make_config((pair(1), pair(2))), notify=NotifySettings(urls=(url,)))


def test_latest_runs_can_pass_over_the_audits_a_stop_abandoned(store: Store) -> None:
    now = datetime.now(UTC)
    store.record_audit(
        lab_audit(1, Verdict.DRIFTED, now - timedelta(minutes=2), opened_trust()), Trigger.SCHEDULE
    )
    store.record_audit(
        lab_audit(1, Verdict.ERROR, now - timedelta(minutes=1), error=ABANDONED), Trigger.SCHEDULE
    )
    assert store.latest_runs()["pair-01"].verdict is Verdict.ERROR
    assert store.latest_runs(except_errors_starting=ABANDONED_PREFIX)["pair-01"].verdict is Verdict.DRIFTED


def test_after_a_restart_a_lab_as_it_stood_is_not_announced_again_even_past_an_abandoned_audit(
    store: Store,
) -> None:
    now = datetime.now(UTC)
    store.record_audit(
        lab_audit(1, Verdict.DRIFTED, now - timedelta(minutes=3), opened_trust()), Trigger.SCHEDULE
    )
    store.record_audit(
        lab_audit(1, Verdict.ERROR, now - timedelta(minutes=2), error=ABANDONED), Trigger.SCHEDULE
    )
    store.record_audit(lab_audit(2, Verdict.BROKEN, now - timedelta(minutes=2)), Trigger.SCHEDULE)
    with running_receiver() as receiver:
        opened = open_watch(config_notifying(receiver.url()), lambda: store, lambda: "host")
        assert opened is not None
        watch, notifier = opened
        notifier.start()
        assert watch.audited(lab_audit(1, Verdict.DRIFTED, now, opened_trust())) is None
        assert watch.audited(lab_audit(2, Verdict.BROKEN, now)) is None
        assert watch.audited(lab_audit(2, Verdict.CONFORMANT, now)) is NotifyEvent.RECOVERED
        receiver.next(timeout=10)
        notifier.stop()
    assert [body["title"] for body in receiver.all] == ["pair-02 is conformant again"]
