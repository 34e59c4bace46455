"""Account access: cheap clients (one session, one loader, one STS client, shared pools), cached per
account and bounded, thread-safe; explicit retries, pools sized to the concurrency; a lab's requests at
once, counted as its own; the request budget; AWS's faults retried past botocore's attempts within a lab's
budget, and every retry counted."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from auditor.app.audit import audit_lab
from auditor.app.context import open_context
from auditor.aws.accounts import (
    CACHED_ACCOUNTS,
    RETRY_MODE,
    THREADS,
    AccountAccessError,
    AccountSessions,
    LruCache,
    accounts_for_one_pass,
    client_settings,
    parse_timestamp,
    request_workers_for,
)
from auditor.domain.config import AccountAccess, AwsSettings
from auditor.domain.faults import AwsFault, LabRetries, lab_budget
from conftest import in_process_context, make_config, pair, solo
from provisioner.provision import provision_targets

ORIGIN = AccountAccess(
    "111111111111", role_arn="arn:aws:iam::111111111111:role/Access", external_id="class-1"
)


def sessions(concurrency: int = 16, **options: Any) -> AccountSessions:
    return AccountSessions(
        client_settings(
            AwsSettings(endpoint_url=None, max_attempts=4), "eu-west-1", concurrency, None, **options
        )
    )


def account(number: int) -> AccountAccess:
    account_id = f"{number:012d}"
    return AccountAccess(account_id, role_arn=f"arn:aws:iam::{account_id}:role/Access")


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
    provision_targets(provisioning, provisioning.targets(), dry_run=False)
    fresh = in_process_context(lab)  # a new process: its credentials must be assumed again
    audit = audit_lab(fresh, fresh.targets()[0], invoke=False)
    assert audit.verdict.value == "conformant"
    # The log group became a finding of the audit (issue 12): it costs exactly one request more.
    assert fresh.sessions.calls.get("logs:DescribeLogGroups") == 1
    assert audit.requests - 1 <= 12, fresh.sessions.calls
    assert fresh.sessions.calls.get("sts:AssumeRole", 0) >= 1


# ------------------------------------------------------------------------------------- the client cache


def test_an_lru_cache_keeps_its_bound_and_lets_the_least_recently_used_go() -> None:
    cache: LruCache[str, int] = LruCache(2)
    assert cache.put("a", 1) == [] and cache.put("b", 2) == []
    assert cache.get("a") == 1  # "b" is now the least recently used
    assert cache.put("c", 3) == [2]
    assert (len(cache), cache.get("b"), cache.get("a"), cache.get("c")) == (2, None, 1, 3)
    with pytest.raises(ValueError):
        LruCache(0)


@pytest.mark.usefixtures("moto_in_process")
def test_the_clients_of_at_most_the_bound_of_accounts_are_kept_and_an_evicted_account_gets_new_ones() -> None:
    shared = sessions(cached_accounts=2)
    first = shared.client(account(1), "iam")
    shared.client(account(2), "iam")
    shared.client(account(3), "iam")
    assert shared.cached_accounts() == 2
    again = shared.client(account(1), "iam")
    assert again is not first  # made anew, with the account's same credentials: no second AssumeRole
    assert access_key_signing(shared, account(1), again) == shared.credentials(account(1)).access_key
    assert shared.client(account(1), "iam") is again
    assert shared.cached_accounts() == 2
    assert shared.clients_made == 2  # botocore clients: iam and the operator's sts, whatever the accounts


def test_a_command_keeps_the_clients_of_the_labs_under_way_and_the_daemon_those_of_a_large_class() -> None:
    config = make_config((pair(1),), endpoint_url="http://127.0.0.1:1", concurrency=32)
    with open_context(config) as once:
        assert once.sessions.settings.cached_accounts == accounts_for_one_pass(32) == 128
    with open_context(config, cached_accounts=CACHED_ACCOUNTS) as daemon:
        assert daemon.sessions.settings.cached_accounts == CACHED_ACCOUNTS


def test_every_client_shares_one_loader_and_one_connection_pool_per_connection_settings() -> None:
    shared = sessions()
    made = [shared.client(account(n), service) for n in (1, 2) for service in ("iam", "s3", "lambda")]
    assert len({id(client._loader) for client in made}) == 1
    assert len({id(client._endpoint.http_session) for client in made}) == 1
    patient = shared.client(account(1), "sqs", read_timeout=40)
    assert patient._endpoint.http_session is not made[0]._endpoint.http_session
    assert shared.connection_pools() == 2


def test_pools_are_per_client_when_sharing_is_off() -> None:
    shared = sessions(share_connections=False)
    assert shared.client(account(1), "iam")._endpoint.http_session is not (
        shared.client(account(1), "s3")._endpoint.http_session
    )


def test_assumed_roles_share_one_sts_client_whatever_the_number_of_accounts() -> None:
    shared = sessions()
    fetchers = [shared.credentials(account(n))._refresh_using.__self__ for n in range(1, 5)]
    # botocore's fetcher asks for a new client from the operator's frozen credentials at every fetch.
    sts = {id(fetcher._create_client()) for fetcher in fetchers for _ in range(2)}
    assert len(sts) == 1
    assert shared.clients_made == 1


def test_clients_made_at_once_from_many_threads_are_one_per_account_and_service() -> None:
    shared = sessions()
    wanted = [(n, service) for n in range(1, 5) for service in ("iam", "s3", "logs")]
    start = threading.Barrier(8)

    def make_all(_: int) -> list[Any]:
        start.wait(10)
        return [shared.client(account(n), service) for n, service in wanted]

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(make_all, range(8)))
    assert all([id(client) for client in row] == [id(client) for client in seen[0]] for row in seen)
    assert len({id(client) for client in seen[0]}) == len(wanted)  # a client an account and service
    assert shared.clients_made == 3  # botocore clients: one a service, shared by the accounts


def test_a_hook_reaches_the_accounts_clients_made_before_and_after_it_and_no_other() -> None:
    shared = sessions()
    before = shared.client(account(1), "sts")

    def answer(account_id: str) -> Any:
        # A before-call handler that answers stands for the request (botocore then sends nothing).
        return lambda **_: (SimpleNamespace(status_code=200, headers={}), {"Account": account_id})

    shared.hook(account(1), "before-call.sts.GetCallerIdentity", answer("one"))
    shared.hook(account(2), "before-call.sts.GetCallerIdentity", answer("two"))
    after = shared.client(account(1), "sts", read_timeout=9)
    other = shared.client(account(2), "sts")
    assert [client.get_caller_identity()["Account"] for client in (before, after, other)] == [
        "one",
        "one",
        "two",
    ]


def access_key_signing(shared: AccountSessions, access: AccountAccess, client: Any) -> str:
    """The access key that signs a request the client makes (moto in process answers it)."""
    signed: list[str] = []

    def record(request: Any, **_: Any) -> None:
        signed.append(request.headers["Authorization"])

    shared.hook(access, "before-send.iam.ListRoles", record, first=True)
    client.list_roles()
    assert len(signed) == 1, "the hook ran for another account's request, or never"
    return str(signed[0]).split("Credential=", 1)[1].split("/", 1)[0]


@pytest.mark.usefixtures("moto_in_process")
def test_each_account_s_requests_are_signed_with_its_own_credentials_through_one_shared_client() -> None:
    shared = sessions()
    accounts = [account(n) for n in range(1, 7)]
    start = threading.Barrier(len(accounts))

    def signing_key(access: AccountAccess) -> str:
        start.wait(10)  # every account's first request at once, through the one IAM client
        return access_key_signing(shared, access, shared.client(access, "iam"))

    with ThreadPoolExecutor(max_workers=len(accounts)) as pool:
        keys = list(pool.map(signing_key, accounts))
    assert keys == [shared.credentials(access).access_key for access in accounts]
    assert len(set(keys)) == len(accounts)
    assert shared.clients_made == 2  # iam for all six, and the operator's sts that assumed the roles
    assert shared.calls["sts:AssumeRole"] == len(accounts)


@pytest.mark.usefixtures("moto_in_process")
def test_a_request_on_a_shared_client_outside_any_account_is_refused_before_it_is_sent() -> None:
    shared = sessions()
    shared.client(account(1), "iam")
    (outside,) = [made.client for made in shared._shared.values()]
    with pytest.raises(AccountAccessError, match="outside any account"):
        outside.list_roles()


# ------------------------------------------------------------------------------------- requests at once


def test_each_keeps_the_order_and_raises_the_first_failure_in_order_after_all_have_run() -> None:
    shared = sessions(request_workers=4)
    assert shared.each(lambda n: n * n, list(range(10))) == [n * n for n in range(10)]
    ran: list[int] = []

    def job(n: int) -> int:
        ran.append(n)
        if n in (3, 6):
            raise KeyError(n)
        return n

    with pytest.raises(KeyError) as raised:
        shared.each(job, list(range(8)))
    assert raised.value.args == (3,)
    assert sorted(ran) == list(range(8))
    shared.close()


def test_each_after_close_runs_its_items_in_the_calling_thread() -> None:
    shared = sessions(request_workers=2)
    shared.close()
    caller = threading.get_ident()
    assert shared.each(lambda _: threading.get_ident(), [1, 2, 3]) == [caller] * 3


def test_each_inside_each_never_waits_for_its_own_pool() -> None:
    shared = sessions(request_workers=1)  # one worker: nested waiting on it would deadlock
    assert shared.each(lambda n: sum(shared.each(lambda m: m, [n, n, n])), [1, 2, 3]) == [3, 6, 9]
    shared.close()


@pytest.mark.usefixtures("moto_in_process")
@pytest.mark.parametrize("workers", [0, 8], ids=["one-at-a-time", "at-once"])
def test_a_lab_counts_the_requests_made_for_it_on_the_request_workers(workers: int) -> None:
    lab = pair(1)
    provisioning = in_process_context(lab)
    provision_targets(provisioning, provisioning.targets(), dry_run=False)
    fresh = in_process_context(lab)
    fresh.sessions.settings = replace(fresh.sessions.settings, request_workers=workers)
    audit = audit_lab(fresh, fresh.targets()[0], invoke=False)
    assert audit.verdict.value == "conformant"
    assert audit.requests == fresh.sessions.total_calls()


@pytest.mark.usefixtures("moto_in_process")
def test_an_audit_with_room_for_one_account_s_clients_still_audits_both_accounts() -> None:
    lab = pair(1)
    provisioning = in_process_context(lab)
    provision_targets(provisioning, provisioning.targets(), dry_run=False)
    fresh = in_process_context(lab)
    fresh.sessions = AccountSessions(replace(fresh.sessions.settings, cached_accounts=1))
    for _ in range(2):
        assert audit_lab(fresh, fresh.targets()[0], invoke=False).verdict.value == "conformant"
    assert fresh.sessions.cached_accounts() == 1
    assert fresh.sessions.calls["sts:AssumeRole"] == 2  # evicted clients, kept credentials


def test_request_workers_make_one_lab_faster_and_never_push_the_threads_past_the_bound() -> None:
    assert request_workers_for(1) == 2  # one lab alone: its independent reads at once
    assert all(
        concurrency + request_workers_for(concurrency) <= max(THREADS, concurrency)
        for concurrency in range(1, 200)
    )
    # Many labs at once still leave room: a class's last labs, fewer than the workers, go at once too.
    assert request_workers_for(64) == 64


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-02T15:06:00Z",
        "2026-12-02T15:06:00.123456Z",
        "2026-12-02T15:06:00+00:00",
        "2026-12-02T17:06:00.5+02:00",
        "2026-12-02T15:06:00",  # no zone: botocore's own decides
        "Wed, 02 Dec 2026 15:06:00 GMT",
        "1796223960",
        1796223960,
        1796223960.25,
    ],
)
def test_timestamps_are_parsed_as_botocore_parses_them(value: object) -> None:
    ours, botocore_s = parse_timestamp(value), botocore_parse_timestamp(value)
    assert ours == botocore_s and ours.utcoffset() == botocore_s.utcoffset()


def test_the_clients_parse_timestamps_with_the_quicker_parser() -> None:
    iam = sessions().client(ORIGIN, "iam")
    parser = iam._endpoint._response_parser_factory.create_parser("query")  # as the endpoint makes one
    assert parser._timestamp_parser is parse_timestamp


# ------------------------------------------------------------------------------------- AWS's faults


class _Canned:
    """What botocore reads an HTTP body from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


THROTTLED = (
    400,
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
    b"</Error><RequestId>r</RequestId></ErrorResponse>",
)
IDENTITY = (
    200,
    b"<GetCallerIdentityResponse><GetCallerIdentityResult><Account>111111111111</Account>"
    b"<Arn>arn:aws:iam::111111111111:root</Arn><UserId>AIDA</UserId></GetCallerIdentityResult>"
    b"</GetCallerIdentityResponse>",
)
OPERATOR_ACCOUNT = AccountAccess("111111111111")  # the operator's own credentials: no role to assume


def answering(shared: AccountSessions, *answers: tuple[int, bytes]) -> list[tuple[int, bytes]]:
    """STS answers GetCallerIdentity with `answers` in turn (a before-send handler stands for AWS)."""
    left = list(answers)

    def answer(request: Any, **_: Any) -> AWSResponse:
        status, body = left.pop(0)
        return AWSResponse(request.url, status, {}, _Canned(body))

    shared.hook(OPERATOR_ACCOUNT, "before-send.sts.GetCallerIdentity", answer, first=True)
    return left


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)


def a_budget(retries: int) -> LabRetries:
    return LabRetries(retries, 60, sleep=lambda _seconds: None)


@pytest.mark.usefixtures("no_backoff")
def test_botocores_own_retries_are_counted() -> None:
    shared = sessions()  # 4 attempts
    left = answering(shared, THROTTLED, THROTTLED, IDENTITY)
    assert shared.client(OPERATOR_ACCOUNT, "sts").get_caller_identity()["Account"] == "111111111111"
    assert (left, shared.retries.snapshot()) == ([], {"botocore": 2})


@pytest.mark.usefixtures("no_backoff")
def test_outside_a_labs_budget_a_call_has_botocores_attempts_only() -> None:
    shared = sessions()
    answering(shared, *[THROTTLED] * 4, IDENTITY)
    with pytest.raises(ClientError, match="Throttling"):
        shared.client(OPERATOR_ACCOUNT, "sts").get_caller_identity()
    assert shared.retries.snapshot() == {"botocore": 3}


@pytest.mark.usefixtures("no_backoff")
def test_within_a_labs_budget_a_call_is_retried_past_botocores_attempts() -> None:
    shared = sessions()
    left = answering(shared, *[THROTTLED] * 5, IDENTITY)
    with lab_budget(a_budget(3)):
        assert shared.client(OPERATOR_ACCOUNT, "sts").get_caller_identity()["Account"] == "111111111111"
    assert (left, shared.retries.snapshot()) == ([], {"botocore": 4, "lab": 1})


@pytest.mark.usefixtures("no_backoff")
def test_past_the_labs_budget_the_call_is_an_aws_fault_naming_the_call_the_account_and_every_attempt() -> (
    None
):
    shared = sessions()
    answering(shared, *[THROTTLED] * 8, IDENTITY)
    with lab_budget(a_budget(1)), pytest.raises(AwsFault) as raised:
        shared.client(OPERATOR_ACCOUNT, "sts").get_caller_identity()
    assert str(raised.value) == (
        "AWS throttled sts:GetCallerIdentity in account 111111111111 8 times (Throttling: Rate exceeded)"
    )
