"""Faults on the way to AWS, and a process that dies half way: the end state is always accounted for.

AWS throttles, fails, resets connections and answers slowly; credentials expire in the middle of a
run; an operator's `auditor provision` or `auditor teardown` is killed part-way. Each test asserts the
end state:

- every lab is either done, or reported as failed with its cause (never mistaken for drift);
- nothing is left half-built without a record of it;
- a rerun completes the work;
- nothing outside the labs is touched (other roles, buckets and functions in the lab accounts survive).

Faults come from bench/latency_proxy.py in front of a moto server (real HTTP: protocol-correct
throttling answers, TCP resets, slow answers), or from a botocore `before-send` hook.
"""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff

from auditor.app import service
from auditor.app.audit import audit_targets
from auditor.app.collect import collect_lab
from auditor.app.context import Context, open_context
from auditor.app.leases import LEASE_TTL
from auditor.app.recording import register_labs
from auditor.domain.config import LabConfig, load_config
from auditor.domain.model import Verdict
from auditor.store import LabState, LifecycleEvent, Store, upgrade
from bench.latency_proxy import Faults, LatencyProxy
from conftest import REPO, labs_toml, make_config, pair, write_config
from provisioner.provision import provision_targets
from provisioner.teardown import teardown_targets

pytestmark = pytest.mark.server

LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
FAULT_CODES = (
    "Throttling",
    "TooManyRequests",
    "SlowDown",
    "InternalFailure",
    "Connection",
    "Timeout",
    "reached max retries",
)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retries, as configured, but without seconds of backoff between attempts."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.005)


@pytest.fixture(scope="module")
def moto(moto_server_url: str) -> str:
    """The moto server, emptied once: every test here works in accounts of its own."""
    request = urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    return moto_server_url


@pytest.fixture(scope="module")
def built(moto: str) -> tuple[LabConfig, ...]:
    """A class provisioned once, with bystanders in its accounts: the tests that audit it share it, and
    the teardown test, the last to use it, tears half of it down."""
    labs = classroom(1, 6)
    add_bystanders(provisioned(moto, labs), labs)
    return labs


@pytest.fixture
def proxy(moto: str) -> Iterator[LatencyProxy]:
    with LatencyProxy(moto, delay=0.0) as running:
        yield running


def classroom(first: int, size: int) -> tuple[LabConfig, ...]:
    return tuple(pair(first + n) for n in range(size))


def context_for(endpoint: str, labs: tuple[LabConfig, ...], **aws: Any) -> Context:
    config = make_config(labs, endpoint_url=endpoint)
    if aws:
        config = replace(config, aws=replace(config.aws, **aws))
    return open_context(config)


def provisioned(endpoint: str, labs: tuple[LabConfig, ...]) -> Context:
    context = context_for(endpoint, labs)
    outcomes = provision_targets(context, context.targets(), dry_run=False)
    assert all(outcome.ok for outcome in outcomes), [outcome.error for outcome in outcomes]
    return context


def audited(context: Context) -> dict[str, tuple[Verdict, str]]:
    run = audit_targets(context, context.targets(), invoke=False)
    return {lab.lab: (lab.verdict, lab.error or "") for lab in run.labs}


# ------------------------------------------------------------------------------------- bystanders


def add_bystanders(context: Context, labs: tuple[LabConfig, ...]) -> None:
    """What students and other courses keep in the lab accounts: none of it is the lab's."""
    for lab in labs:
        for side in (lab.origin, lab.destination):
            context.sessions.client(side, "iam").create_role(
                RoleName="StudentOwnRole", AssumeRolePolicyDocument=LAMBDA_TRUST
            )
        context.sessions.client(lab.destination, "s3").create_bucket(
            Bucket=f"student-own-{lab.destination.account_id}"
        )
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def lambda_handler(event, context):\n    return 1\n")
        context.sessions.client(lab.origin, "lambda").create_function(
            FunctionName="StudentOwnFunction",
            Role=f"arn:aws:iam::{lab.origin.account_id}:role/StudentOwnRole",
            Runtime="python3.12",
            Handler="handler.lambda_handler",
            Code={"ZipFile": code.getvalue()},
        )
        context.sessions.client(lab.origin, "logs").create_log_group(
            logGroupName="/aws/lambda/StudentOwnFunction"
        )


def missing_bystanders(context: Context, labs: tuple[LabConfig, ...]) -> list[str]:
    missing = []
    for lab in labs:
        for side in (lab.origin, lab.destination):
            roles = {r["RoleName"] for r in context.sessions.client(side, "iam").list_roles()["Roles"]}
            if "StudentOwnRole" not in roles:
                missing.append(f"{side.account_id}: role StudentOwnRole")
        buckets = {
            b["Name"] for b in context.sessions.client(lab.destination, "s3").list_buckets()["Buckets"]
        }
        if f"student-own-{lab.destination.account_id}" not in buckets:
            missing.append(f"{lab.destination.account_id}: bucket")
        functions = context.sessions.client(lab.origin, "lambda").list_functions()["Functions"]
        if "StudentOwnFunction" not in {f["FunctionName"] for f in functions}:
            missing.append(f"{lab.origin.account_id}: function StudentOwnFunction")
        groups = context.sessions.client(lab.origin, "logs").describe_log_groups(
            logGroupNamePrefix="/aws/lambda/StudentOwnFunction"
        )["logGroups"]
        if not groups:
            missing.append(f"{lab.origin.account_id}: log group")
    return missing


def lab_resources_left(context: Context) -> dict[str, list[str]]:
    """Each lab's own resources that exist now (empty lists after a complete teardown)."""
    left = {}
    for target in context.targets():
        actual = collect_lab(context.sessions, target)
        present = [role.name for role in actual.roles if role.exists]
        present += [actual.function.name] if actual.function.exists else []
        present += [actual.marker_bucket.name] if actual.marker_bucket.exists else []
        present += [actual.log_group.name] if actual.log_group and actual.log_group.exists else []
        left[target.name] = present
    return left


# ------------------------------------------------------------------------------------- throttling, errors


def test_throttling_and_server_errors_are_retried_or_reported_never_taken_for_drift(
    built: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    labs = built
    proxy.set_faults(Faults(throttle=0.25, server_error=0.1, seed=7))
    context = context_for(proxy.url, labs, max_attempts=5)  # the product's default
    verdicts = audited(context)
    stats = proxy.snapshot()
    assert stats["faults"].get("throttle", 0) > 5 and stats["faults"].get("server_error", 0) > 2, stats
    for name, (verdict, error) in verdicts.items():
        # A fault is never drift: the lab is conformant (retries worked), or an error naming the fault.
        assert verdict is Verdict.CONFORMANT or (
            verdict is Verdict.ERROR and any(code in error for code in FAULT_CODES)
        ), (name, verdict, error)
    assert sum(verdict is Verdict.CONFORMANT for verdict, _ in verdicts.values()) >= 4, verdicts

    proxy.set_faults(Faults())
    assert set(audited(context).values()) == {(Verdict.CONFORMANT, "")}  # the same runtime recovers


def test_connection_resets_and_slow_answers_are_retried(
    built: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    labs = built[:4]
    proxy.set_faults(Faults(reset=0.15, slow=0.08, slow_delay=1.0, seed=3))
    # A read timeout well below the slow answer's delay: a slow answer is a timeout, and is retried.
    context = context_for(proxy.url, labs, read_timeout=0.3, max_attempts=4)
    verdicts = audited(context)
    faults = proxy.snapshot()["faults"]
    assert faults.get("reset", 0) >= 3 and faults.get("slow", 0) >= 1, faults
    for name, (verdict, error) in verdicts.items():
        assert verdict is Verdict.CONFORMANT or (
            verdict is Verdict.ERROR and any(code in error for code in FAULT_CODES)
        ), (name, verdict, error)
    assert sum(verdict is Verdict.CONFORMANT for verdict, _ in verdicts.values()) >= 2, verdicts


def test_a_lab_whose_every_request_times_out_is_an_error_and_the_others_go_on(
    moto: str, built: tuple[LabConfig, ...]
) -> None:
    labs = built[:3]
    context = context_for(moto, labs)
    doomed = labs[1].destination

    def time_out(request: Any, **_: Any) -> None:
        raise ReadTimeoutError(endpoint_url=request.url)

    context.sessions.hook(doomed, "before-send", time_out, first=True)
    verdicts = audited(context)
    assert verdicts[labs[1].name][0] is Verdict.ERROR
    assert "Read timeout" in verdicts[labs[1].name][1]
    assert verdicts[labs[0].name] == verdicts[labs[2].name] == (Verdict.CONFORMANT, "")


def test_provisioning_under_faults_ends_done_or_failed_and_a_rerun_completes(
    moto: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    labs = classroom(31, 3)
    direct = context_for(moto, labs)
    add_bystanders(direct, labs)
    store = store_in(tmp_path)
    # Lost responses are the nasty one: the request was done, the client never heard, and a retried
    # CreateRole meets EntityAlreadyExists.
    proxy.set_faults(Faults(throttle=0.15, lost_response=0.08, reset=0.05, seed=11))
    context = context_for(proxy.url, labs)
    outcomes = provision_targets(context, context.targets(), dry_run=False, store=store)
    assert proxy.snapshot()["faults"], "no fault was injected"
    states = {status.name: status.state for status in store.status()}
    for outcome in outcomes:
        if outcome.ok:
            assert states[outcome.name] is LabState.ACTIVE
        else:
            assert outcome.error, outcome
            assert states[outcome.name] is LabState.FAILED  # recorded, with its cause in the history
    proxy.set_faults(Faults())
    rerun = provision_targets(context_for(proxy.url, labs), context.targets(), dry_run=False, store=store)
    assert all(outcome.ok for outcome in rerun), [outcome.error for outcome in rerun]
    assert {status.state for status in store.status()} == {LabState.ACTIVE}
    assert set(audited(context_for(moto, labs)).values()) == {(Verdict.CONFORMANT, "")}
    assert missing_bystanders(direct, labs) == []


# ------------------------------------------------------------------------------------- credentials


def refreshable_credentials(context: Context) -> list[RefreshableCredentials]:
    found = []
    accesses = {access.key: access for lab in context.config.labs for access in (lab.origin, lab.destination)}
    for access in accesses.values():
        credentials = context.sessions.credentials(access)
        if isinstance(credentials, RefreshableCredentials):
            found.append(credentials)
    return found


def expire(credentials: RefreshableCredentials) -> bool:
    """As if the hour were up: the credentials and the fetcher's cached STS answer are both past.

    False for credentials not fetched yet (deferred until first use): there is nothing to expire.
    """
    if credentials._expiry_time is None:
        return False
    credentials._expiry_time = datetime.now(UTC) - timedelta(seconds=1)
    fetcher = getattr(credentials._refresh_using, "__self__", None)
    cache = getattr(fetcher, "_cache", None)
    if isinstance(cache, dict):
        cache.clear()
    return True


def expire_midway(context: Context, after: int) -> Callable[[str, str, bytes, bytes], None]:
    """A proxy observer that lets `after` requests through, then expires every account's credentials."""
    seen = {"requests": 0, "expired": 0}

    def observe(method: str, path: str, request: bytes, response: bytes) -> None:
        seen["requests"] += 1
        if seen["requests"] == after:
            seen["expired"] = sum(expire(credentials) for credentials in refreshable_credentials(context))

    observe.seen = seen  # type: ignore[attr-defined]
    return observe


def test_credentials_that_expire_in_the_middle_of_a_run_are_refreshed(
    moto: str, built: tuple[LabConfig, ...]
) -> None:
    labs = built
    with LatencyProxy(moto, delay=0.0) as watching:  # it only watches, and expires
        context = context_for(watching.url, labs)
        watching.observe = observe = expire_midway(context, after=36)  # of 72
        verdicts = audited(context)
        first_keys = dict(watching.snapshot()["faults"])  # nothing injected
        seen = observe.seen  # type: ignore[attr-defined]
        assert first_keys == {}
        assert seen["expired"] >= 4, seen  # accounts whose credentials existed when the hour was up
        assert set(verdicts.values()) == {(Verdict.CONFORMANT, "")}
        # Each account assumed its role at first use, and again if it was used after the expiry.
        accounts = 2 * len(labs)
        assert accounts < context.sessions.calls["sts:AssumeRole"] <= accounts + seen["expired"]
        # The next run refreshes the rest, and the same runtime goes on with fresh credentials.
        assert set(audited(context).values()) == {(Verdict.CONFORMANT, "")}
    assert context.sessions.calls["sts:AssumeRole"] == accounts + seen["expired"]
    assert not any(credentials.refresh_needed() for credentials in refreshable_credentials(context))


def test_a_refresh_that_fails_is_that_labs_error_and_a_rerun_completes(
    built: tuple[LabConfig, ...], proxy: LatencyProxy
) -> None:
    labs = built[:4]
    context = context_for(proxy.url, labs)
    assert set(audited(context).values()) == {(Verdict.CONFORMANT, "")}  # credentials in hand
    for credentials in refreshable_credentials(context):
        expire(credentials)
    proxy.set_faults(Faults(server_error=1.0, services=("sts",)))  # STS is down; the rest is fine
    verdicts = audited(context)
    for name, (verdict, error) in verdicts.items():
        assert verdict is Verdict.ERROR and "AssumeRole" in error and "InternalFailure" in error, (
            name,
            error,
        )
    proxy.set_faults(Faults())
    assert set(audited(context).values()) == {(Verdict.CONFORMANT, "")}  # the same runtime recovers


# ------------------------------------------------------------------------------------- killed half way


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "auditor", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


_CHANGING_CALL = re.compile(rb"Action=(Create|Put|Delete|Update|Attach|Detach)")


class Changes:
    """A proxy observer counting the requests that change something (as opposed to reading)."""

    def __init__(self) -> None:
        self.count = 0
        self.counted = threading.Condition()

    def __call__(self, method: str, path: str, request: bytes, response: bytes) -> None:
        changing = method in ("PUT", "DELETE") or (
            method == "POST" and (bool(_CHANGING_CALL.search(request)) or "/functions" in path)
        )
        if changing:
            with self.counted:
                self.count += 1
                self.counted.notify_all()


def kill_after(process: subprocess.Popen[str], changes: Changes, count: int, timeout: float = 60) -> None:
    """SIGKILL the process once `count` of its requests that change something went through."""
    deadline = time.monotonic() + timeout
    with changes.counted:
        # Woken by each change; every half second also looks whether the process ended by itself.
        while not changes.counted.wait_for(lambda: changes.count >= count, timeout=0.5):
            assert process.poll() is None, (
                f"it finished before it could be killed: {process.communicate()[0]}"
            )
            assert time.monotonic() < deadline, "it made too few changes"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)


def states(database: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name, state, lease_owner FROM labs").fetchall()
    return {name: (state, owner) for name, state, owner in rows}


def test_a_provisioning_killed_half_way_is_on_record_and_a_rerun_completes_it(
    moto: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    labs = classroom(61, 2)
    direct = context_for(moto, labs)
    add_bystanders(direct, labs)
    config = write_config(tmp_path, proxy.url, labs_toml(*labs))
    proxy.delay = 0.05  # slow enough to be caught in the act
    proxy.observe = changes = Changes()
    process = start_cli("provision", "--config", str(config))
    kill_after(process, changes, count=6)  # of about 14

    # Half-built labs, and the record says so: provisioning, not active.
    left = lab_resources_left(direct)
    assert any(left.values()), "nothing was built before the kill"
    assert any(len(present) < 5 for present in left.values()), left
    recorded = states(tmp_path / "auditor.db")
    for name, present in left.items():
        if present:
            assert recorded[name][0] == LabState.PROVISIONING.value, (name, recorded)

    proxy.delay = 0.0
    outcome = service.provision(load_config(config), (), dry_run=False)
    assert outcome.failed == () and outcome.interrupted is None, outcome
    assert {state for state, _ in states(tmp_path / "auditor.db").values()} == {LabState.ACTIVE.value}
    assert set(audited(context_for(moto, labs)).values()) == {(Verdict.CONFORMANT, "")}
    assert missing_bystanders(direct, labs) == []


def test_a_teardown_killed_half_way_is_finished_by_a_rerun(
    moto: str, built: tuple[LabConfig, ...], proxy: LatencyProxy, tmp_path: Path
) -> None:
    labs = built[:3]
    direct = context_for(moto, labs)
    config = write_config(tmp_path, proxy.url, labs_toml(*labs))
    proxy.delay = 0.05
    proxy.observe = changes = Changes()
    process = start_cli("teardown", "--yes", "--config", str(config))
    kill_after(process, changes, count=8)  # of about 18

    left = lab_resources_left(direct)
    assert any(left.values()) and not all(len(present) == 5 for present in left.values()), left
    database = tmp_path / "auditor.db"
    recorded = states(database)
    for name, present in left.items():
        if len(present) < 5:  # a lab the killed run had started on: its lease is on record
            assert recorded[name][1], (name, recorded)

    # The killed process's leases: a process of this host that no longer runs, taken over at once.
    proxy.delay = 0.0
    outcome = run_teardown(config)
    assert outcome.failed == () and outcome.interrupted is None, outcome
    assert all(present == [] for present in lab_resources_left(direct).values())
    assert set(states(database).values()) == {(LabState.TORN_DOWN.value, None)}  # no lease left
    assert missing_bystanders(direct, labs) == []


def run_teardown(config: Path) -> service.ChangeOutcome:
    """`auditor teardown --yes` as the CLI runs it (in this process: the killed run was the real process)."""
    return service.teardown(load_config(config), (), expired_only=False, dry_run=False)


# ------------------------------------------------------------------------------------- known product bugs
# Each pins down what a rerun after a kill should do and does not yet; strict, so that the fix shows.


def store_in(tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    return Store.from_url(url)


def test_a_first_provisioning_finished_by_a_rerun_starts_the_labs_lifetime(moto: str, tmp_path: Path) -> None:
    labs = classroom(81, 1)
    context = context_for(moto, labs)
    store = store_in(tmp_path)
    register_labs(store, context.targets())
    # What a killed first run leaves: the lab marked provisioning, its first resource built.
    store.mark_provisioning(labs[0].name, datetime.now(UTC))
    target = context.targets()[0]
    role = target.expected.destination_role
    context.sessions.client(labs[0].destination, "iam").create_role(
        RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust_policy)
    )
    assert all(outcome.ok for outcome in provision_targets(context, [target], dry_run=False, store=store))
    status = store.status()[0]
    assert status.state is LabState.ACTIVE
    assert status.expires_at is not None, "the lab's lifetime never started"
    assert [entry.event for entry in store.lifecycle(labs[0].name)][-1] is LifecycleEvent.PROVISIONED


def test_a_lab_built_whole_by_a_run_recorded_as_failed_is_recorded_active_by_the_rerun(
    moto: str, tmp_path: Path
) -> None:
    """The last answer of a run lost (CreateFunction done, the retry told it already exists): the lab is
    whole, the record says failed; the rerun finds nothing to do and says the lab is up."""
    labs = classroom(82, 1)
    context = context_for(moto, labs)
    store = store_in(tmp_path)
    assert all(outcome.ok for outcome in provision_targets(context, context.targets(), dry_run=False))
    register_labs(store, context.targets())
    store.mark_provisioning(labs[0].name, datetime.now(UTC))
    store.record_provision_failed(
        labs[0].name, "CreateFunction: ResourceConflictException", datetime.now(UTC)
    )
    rerun = provision_targets(context, context.targets(), dry_run=False, store=store)
    assert [outcome.ok for outcome in rerun] == [True]
    assert [outcome.result.changed for outcome in rerun if outcome.result is not None] == [()]
    status = store.status()[0]
    assert status.state is LabState.ACTIVE
    assert status.expires_at is not None, "the lab's lifetime never started"
    assert [entry.event for entry in store.lifecycle(labs[0].name)][-1] is LifecycleEvent.PROVISIONED


def test_a_lab_busy_with_another_teardown_is_reported_and_the_others_go_on(moto: str, tmp_path: Path) -> None:
    labs = classroom(85, 2)
    context = provisioned(moto, labs)
    store = store_in(tmp_path)
    register_labs(store, context.targets())
    assert store.claim_lease(labs[0].name, "elsewhere:1", "provision", datetime.now(UTC), LEASE_TTL)
    outcomes = {o.name: o for o in teardown_targets(context, context.targets(), dry_run=False, store=store)}
    assert not outcomes[labs[0].name].ok
    assert "being provisioned by auditor pid 1 on elsewhere since" in (outcomes[labs[0].name].error or "")
    assert outcomes[labs[1].name].ok


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over(moto: str, tmp_path: Path) -> None:
    labs = classroom(88, 1)
    context = provisioned(moto, labs)
    store = store_in(tmp_path)
    register_labs(store, context.targets())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}"
    assert store.claim_lease(labs[0].name, owner, "teardown", datetime.now(UTC), LEASE_TTL)
    (outcome,) = teardown_targets(context, context.targets(), dry_run=False, store=store)
    assert outcome.ok
