"""The daemon tells its watch about teardowns at expiry: a failed one once, a busy lease never (in process)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from auditor.app.context import open_context
from auditor.app.operations import provision_targets
from auditor.common.clock import utc_now
from auditor.daemon.daemon import Daemon
from auditor.daemon.notify import LabWatch, Message
from auditor.domain.config import NotifySettings
from auditor.domain.spec import DESTINATION_ROLE
from auditor.store import Store, upgrade
from conftest import make_config, pair

pytestmark = pytest.mark.usefixtures("moto_in_process")


def expired_daemon(tmp_path: Path) -> tuple[Daemon, Store, list[Message]]:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    config = make_config((pair(1),), database_url=url)
    daemon = Daemon(config, open_context(config))
    store = daemon.database()
    outcomes = provision_targets(daemon.context, daemon.context.targets(), dry_run=False, store=store)
    assert all(outcome.ok for outcome in outcomes)
    store.ensure_lab("pair-01", "100000000001", "200000000001", utc_now() - timedelta(minutes=1))
    sent: list[Message] = []
    daemon.watch = LabWatch(NotifySettings(urls=("json://x",)), sent.append, None)
    return daemon, store, sent


def block_role_deletion(daemon: Daemon) -> None:
    """The role in an instance profile made by hand: the teardown leaves what the spec does not name, so
    deleting the role fails (DeleteConflict) until someone takes it out."""
    iam = daemon.context.sessions.client(pair(1).destination, "iam")
    iam.create_instance_profile(InstanceProfileName="made-by-a-student")
    iam.add_role_to_instance_profile(InstanceProfileName="made-by-a-student", RoleName=DESTINATION_ROLE)


def test_a_failed_teardown_is_announced_once_however_often_it_is_retried(tmp_path: Path) -> None:
    daemon, store, sent = expired_daemon(tmp_path)
    block_role_deletion(daemon)
    daemon.tear_down_expired(store)
    daemon.tear_down_expired(store)
    assert [message.title for message in sent] == ["pair-01: teardown failed"]
    assert "DeleteConflict" in sent[0].body


def test_a_teardown_busy_in_another_process_is_not_a_failure(tmp_path: Path) -> None:
    daemon, store, sent = expired_daemon(tmp_path)
    assert store.claim_lease("pair-01", "other-host:1", "provision", utc_now(), timedelta(minutes=15))
    daemon.tear_down_expired(store)
    assert (
        daemon.metrics.teardowns.labels(outcome="failed")._value.get() == 1
    )  # busy, as the daemon counts it
    assert sent == []
