"""The daemon tells its watch about teardowns at expiry: a failed one once, a busy lease never (in process)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from auditor.app.context import open_context
from auditor.common.clock import utc_now
from auditor.daemon.notify import LabWatch, Message
from auditor.daemon.service import Service
from auditor.domain.config import NotifySettings
from auditor.domain.spec import DESTINATION_ROLE
from auditor.store import Store, upgrade
from conftest import make_config, pair
from provisioner.provision import provision_targets

pytestmark = pytest.mark.usefixtures("moto_in_process")


def expired_service(tmp_path: Path) -> tuple[Service, Store, list[Message]]:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    config = make_config((pair(1),), database_url=url)
    service = Service(config, open_context(config))
    store = service.database()
    outcomes = provision_targets(service.context, service.context.targets(), dry_run=False, store=store)
    assert all(outcome.ok for outcome in outcomes)
    store.ensure_lab("pair-01", "100000000001", "200000000001", utc_now() - timedelta(minutes=1))
    sent: list[Message] = []
    service.watch = LabWatch(NotifySettings(urls=("json://x",)), sent.append, None)
    return service, store, sent


def block_role_deletion(service: Service) -> None:
    """The role in an instance profile made by hand: the teardown leaves what the spec does not name, so
    deleting the role fails (DeleteConflict) until someone takes it out."""
    iam = service.context.sessions.client(pair(1).destination, "iam")
    iam.create_instance_profile(InstanceProfileName="made-by-a-student")
    iam.add_role_to_instance_profile(InstanceProfileName="made-by-a-student", RoleName=DESTINATION_ROLE)


def test_a_failed_teardown_is_announced_once_however_often_it_is_retried(tmp_path: Path) -> None:
    service, store, sent = expired_service(tmp_path)
    block_role_deletion(service)
    service.tear_down_expired(store)
    service.tear_down_expired(store)
    assert [message.title for message in sent] == ["pair-01: teardown failed"]
    assert "DeleteConflict" in sent[0].body


def test_a_teardown_busy_in_another_process_is_not_a_failure(tmp_path: Path) -> None:
    service, store, sent = expired_service(tmp_path)
    assert store.claim_lease("pair-01", "other-host:1", "provision", utc_now(), timedelta(minutes=15))
    service.tear_down_expired(store)
    assert (
        service.metrics.teardowns.labels(outcome="failed")._value.get() == 1
    )  # busy, as the daemon counts it
    assert sent == []
