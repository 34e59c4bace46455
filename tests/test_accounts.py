"""Account access: cached thread-safe clients, explicit retries, pools sized to the concurrency, budget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from auditor.accounts import RETRY_MODE, AccountSessions, client_settings
from auditor.audit import audit_lab
from auditor.config import AccountAccess, AwsSettings
from auditor.operations import provision_targets
from conftest import in_process_context, pair, solo

ORIGIN = AccountAccess(
    "111111111111", role_arn="arn:aws:iam::111111111111:role/Access", external_id="class-1"
)


def sessions(concurrency: int = 16) -> AccountSessions:
    return AccountSessions(
        client_settings(AwsSettings(endpoint_url=None, max_attempts=4), "eu-west-1", concurrency, None)
    )


def test_retries_use_an_explicit_mode_with_a_bounded_number_of_attempts() -> None:
    config = sessions().client(ORIGIN, "iam").meta.config
    assert config.retries == {"mode": RETRY_MODE, "total_max_attempts": 4}
    assert RETRY_MODE == "standard"


def test_the_connection_pool_is_sized_to_the_concurrency() -> None:
    assert sessions(concurrency=64).client(ORIGIN, "s3").meta.config.max_pool_connections >= 64


def test_clients_are_cached_per_account_and_service_and_safe_across_threads() -> None:
    shared = sessions()
    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = list(pool.map(lambda _: shared.client(ORIGIN, "iam"), range(32)))
    assert len({id(client) for client in clients}) == 1
    other = AccountAccess("222222222222", role_arn="arn:aws:iam::222222222222:role/Access")
    assert shared.client(other, "iam") is not clients[0]
    assert shared.client(ORIGIN, "sts") is not clients[0]


def test_overrides_get_a_client_of_their_own() -> None:
    shared = sessions()
    plain = shared.client(ORIGIN, "lambda")
    once = shared.client(
        ORIGIN, "lambda", retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=40
    )
    assert once is not plain
    assert once.meta.config.retries["total_max_attempts"] == 1
    assert once is shared.client(
        ORIGIN, "lambda", read_timeout=40, retries={"mode": "standard", "total_max_attempts": 1}
    )


def test_assumed_role_credentials_are_refreshable_and_assumed_lazily() -> None:
    shared = sessions()
    credentials = shared.credentials(ORIGIN)
    assert credentials.method == "assume-role"
    assert hasattr(credentials, "refresh_needed")
    assert shared.total_calls() == 0  # nothing is assumed until a call needs it


@pytest.mark.usefixtures("moto_in_process")
@pytest.mark.parametrize("lab", [pair(1), solo(1)], ids=["pair", "single-account"])
def test_an_audit_without_the_invoke_makes_at_most_12_requests_sts_included_and_one_for_the_log_group(
    lab: object,
) -> None:
    provisioning = in_process_context(lab)  # type: ignore[arg-type]
    provision_targets(provisioning, provisioning.targets(), dry_run=False, show_progress=False)
    fresh = in_process_context(lab)  # a new process: its credentials must be assumed again
    audit = audit_lab(fresh, fresh.targets()[0], invoke=False)
    assert audit.verdict.value == "conformant"
    # The log group became a finding of the audit (issue 12): it costs exactly one request more.
    assert fresh.sessions.calls.get("logs:DescribeLogGroups") == 1
    assert audit.requests - 1 <= 12, fresh.sessions.calls
    assert fresh.sessions.calls.get("sts:AssumeRole", 0) >= 1
