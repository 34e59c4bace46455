"""The record never lies (interface.md 0.3, "The record"): commands that run beside each other never undo
each other, the daemon never changes a lab before it has audited it, a torn-down lab is not audited,
and every command of a configuration reads one history. Through the real entry point, on a moto server
(and the embedded emulator kept between commands), in processes of their own."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import test_daemon
from botocore.exceptions import EndpointConnectionError
from botocore.retries.standard import ExponentialBackoff
from structlog.testing import capture_logs
from test_daemon import RunningDaemon, config_text, free_port, wait_for
from test_faults import lab_resources_left
from test_operator_day import OPEN_TRUST

from auditor.app.context import Context, open_context
from auditor.aws.emulator import state_file_for
from auditor.daemon.service import Service
from auditor.domain.config import load_config
from auditor.domain.spec import DESTINATION_ROLE
from auditor.store import LabState, Store
from bench.latency_proxy import LatencyProxy
from conftest import labs_toml, make_config, pair, run_cli, write_config

pytestmark = pytest.mark.slow  # the CLI and the daemon in processes of their own

start_daemon = test_daemon.start_daemon  # the fixture, shared

CLASS = tuple(pair(n) for n in range(41, 45))


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "auditor", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def leases_of(database: Path, purpose: str) -> int:
    """How many labs a command holds for `purpose` now (the lease is in the database for all to see)."""
    try:
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT count(*) FROM labs WHERE lease_purpose = ?", (purpose,))
            return int(rows.fetchone()[0])
    except sqlite3.OperationalError:  # not made yet by the command that is starting
        return 0


def history(database: Path) -> tuple[dict[str, LabState], dict[str, list[str]]]:
    store = Store.from_url(f"sqlite:///{database}")
    try:
        states = {status.name: status.state for status in store.status()}
        events = {name: [entry.event.value for entry in store.lifecycle(name)] for name in states}
        return states, events
    finally:
        store.close()


def direct(moto: str, labs: tuple[object, ...] = CLASS) -> Context:
    return open_context(make_config(labs, endpoint_url=moto))  # type: ignore[arg-type]


# ------------------------------------------------------------------------- two commands at once


@pytest.fixture
def slow_moto(moto_server: str) -> Iterator[LatencyProxy]:
    """The moto server 50 ms away: a command takes seconds, long enough for another to start beside it."""
    with LatencyProxy(moto_server, delay=0.05) as proxy:
        yield proxy


def test_a_provision_and_a_teardown_at_once_end_with_the_accounts_empty_and_the_history_saying_so(
    moto_server: str, slow_moto: LatencyProxy, tmp_path: Path
) -> None:
    """The provision is under way when the teardown starts: the teardown waits for each lab's lease,
    then removes what was built."""
    config = write_config(tmp_path, slow_moto.url, labs_toml(*CLASS))
    database = tmp_path / "auditor.db"
    provision = start_cli("provision", "--config", str(config))
    wait_for(lambda: leases_of(database, "provision") > 0, 60, "the provision to hold its first lease")
    teardown = start_cli("teardown", "--yes", "--config", str(config))

    provisioned, _ = provision.communicate(timeout=180)
    torn_down, _ = teardown.communicate(timeout=180)
    assert provision.returncode == 0, provisioned
    assert teardown.returncode == 0, torn_down
    assert all(left == [] for left in lab_resources_left(direct(moto_server)).values())
    states, events = history(database)
    assert set(states.values()) == {LabState.TORN_DOWN}
    for lab, happened in events.items():
        assert happened[0] == "provisioned" and happened[-1] == "torn_down", (lab, happened)
    assert leases_of(database, "provision") == leases_of(database, "teardown") == 0


def test_a_provision_started_beside_a_teardown_does_not_build_again_what_it_tore_down(
    moto_server: str, slow_moto: LatencyProxy, tmp_path: Path
) -> None:
    """The teardown is under way when the provision starts: the provision waits for each lab's lease,
    finds it torn down meanwhile, and leaves it so (a teardown is never undone beside it)."""
    config = write_config(tmp_path, slow_moto.url, labs_toml(*CLASS))
    assert run_cli("provision", "--config", str(config)).returncode == 0
    database = tmp_path / "auditor.db"
    teardown = start_cli("teardown", "--yes", "--config", str(config))
    wait_for(lambda: leases_of(database, "teardown") > 0, 60, "the teardown to hold its first lease")
    provision = start_cli("provision", "--config", str(config))

    torn_down, _ = teardown.communicate(timeout=180)
    provisioned, _ = provision.communicate(timeout=180)
    assert teardown.returncode == 0, torn_down
    assert all(left == [] for left in lab_resources_left(direct(moto_server)).values())
    states, events = history(database)
    assert set(states.values()) == {LabState.TORN_DOWN}
    assert all(happened[-1] == "torn_down" for happened in events.values()), events
    # What the provision did not do, it says: each lab it found torn down meanwhile.
    for lab in CLASS:
        assert f"{lab.name}: FAILED: torn down at 20" in provisioned, provisioned
    assert "while this provision waited for it: not built again" in provisioned
    assert provision.returncode == 1


def test_two_provisions_at_once_build_each_lab_once_and_both_succeed(
    moto_server: str, slow_moto: LatencyProxy, tmp_path: Path
) -> None:
    config = write_config(tmp_path, slow_moto.url, labs_toml(*CLASS))
    first = start_cli("provision", "--config", str(config))
    wait_for(lambda: leases_of(tmp_path / "auditor.db", "provision") > 0, 60, "the first to hold a lease")
    second = start_cli("provision", "--config", str(config))
    outputs = [first.communicate(timeout=180)[0], second.communicate(timeout=180)[0]]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    assert "EntityAlreadyExists" not in "".join(outputs)
    states, events = history(tmp_path / "auditor.db")
    assert set(states.values()) == {LabState.ACTIVE}
    assert all(happened == ["provisioned"] for happened in events.values()), events


def test_a_command_that_waits_too_long_for_a_lab_gives_up_naming_the_holder(
    moto_server: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(46)))
    config.write_text(config.read_text().replace("[lab]\n", '[lab]\nlease_wait = "1s"\n', 1))
    assert run_cli("provision", "--config", str(config)).returncode == 0
    store = Store.from_url(f"sqlite:///{tmp_path / 'auditor.db'}")
    try:
        store.claim_lease("pair-46", "host-a:4321", "teardown", _now(), _minutes(5))
    finally:
        store.close()
    audited = run_cli("audit", "--no-invoke", "--config", str(config))
    assert audited.returncode == 1
    assert "not audited: being torn down by auditor pid 4321 on host-a since " in audited.stdout
    provisioned = run_cli("provision", "--config", str(config))
    assert provisioned.returncode == 1
    assert "pair-46: FAILED: being torn down by auditor pid 4321 on host-a since " in provisioned.stdout
    states, events = history(tmp_path / "auditor.db")
    assert states == {"pair-46": LabState.ACTIVE} and events == {"pair-46": ["provisioned"]}
    assert _runs(tmp_path / "auditor.db", "pair-46") == 0  # what was not judged is not recorded


# ------------------------------------------------------------------------------- torn down is torn down


def test_an_audit_after_a_teardown_skips_the_torn_down_lab_and_records_nothing_for_it(
    moto_server: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, moto_server, labs_toml(pair(47), pair(48)))
    assert run_cli("provision", "--config", str(config)).returncode == 0
    assert run_cli("audit", "--no-invoke", "--config", str(config)).returncode == 0
    assert run_cli("teardown", "--yes", "--lab", "pair-47", "--config", str(config)).returncode == 0

    audited = run_cli("audit", "--no-invoke", "--format", "json", "--config", str(config))
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert [lab["lab"] for lab in json.loads(audited.stdout)["labs"]] == ["pair-48"]
    assert "pair-47: torn down at 20" in audited.stderr and ", skipped" in audited.stderr
    only_gone = run_cli("audit", "--no-invoke", "--lab", "pair-47", "--config", str(config))
    assert only_gone.returncode == 2
    assert "pair-47: torn down, nothing to audit" in only_gone.stderr
    assert _runs(tmp_path / "auditor.db", "pair-47") == 1  # the one audit before the teardown
    status = json.loads(run_cli("status", "--format", "json", "--config", str(config)).stdout)
    assert {lab["lab"]: lab["verdict"] for lab in status["labs"]} == {
        "pair-47": None,
        "pair-48": "conformant",
    }


# --------------------------------------------------------------------------- the daemon audits first


def test_the_daemon_on_a_lasting_emulator_audits_the_students_drift_and_never_resets_it(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    config = config_text(tmp_path, "embedded", (pair(49),), "1h", free_port())
    try:
        assert run_cli("provision", "--config", str(config)).returncode == 0  # starts the lasting emulator
        emulator = json.loads(state_file_for(str(config)).read_text())["url"]
        student = direct(emulator, (pair(49),)).sessions.client(pair(49).destination, "iam")
        student.update_assume_role_policy(RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(OPEN_TRUST))

        daemon = start_daemon(config)
        wait_for(lambda: daemon.events("lab_audited"), 60, "the daemon's first audit")
        (audited,) = daemon.events("lab_audited")
        assert audited["verdict"] == "drifted"
        trust = student.get_role(RoleName=DESTINATION_ROLE)["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"AWS": "*"}  # the evidence stands
        assert not daemon.events("building_labs_never_built")
        _, events = history(tmp_path / "auditor.db")
        assert events["pair-49"] == ["provisioned"]  # no reset
    finally:
        run_cli("emulator", "stop", "--config", str(config))


def test_the_daemon_builds_only_the_labs_never_built_of_which_nothing_stands(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    """pair-50 was never built and nothing of it stands: built. pair-51 was never built by the project,
    but a student has made its destination role: left as found, and audited."""
    labs = (pair(50), pair(51))
    config = config_text(tmp_path, moto_server, labs, "1h", free_port())
    context = direct(moto_server, labs)
    role = context.targets()[1].expected.destination_role
    context.sessions.client(pair(51).destination, "iam").create_role(
        RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust_policy)
    )
    daemon = start_daemon(config)
    wait_for(lambda: len(daemon.events("lab_audited")) >= 2, 90, "both labs audited")
    verdicts = {event["lab"]: event["verdict"] for event in daemon.events("lab_audited")}
    assert verdicts["pair-50"] == "conformant"
    assert verdicts["pair-51"] == "broken"  # its student has built one role of it, not the lab
    assert [event["lab"] for event in daemon.events("lab_left_as_found")] == ["pair-51"]
    states, _ = history(tmp_path / "auditor.db")
    assert states == {"pair-50": LabState.ACTIVE, "pair-51": LabState.PLANNED}
    left = lab_resources_left(context)
    assert left["pair-51"] == [role.name]


# ----------------------------------------------------------------------------- one history, one expiry


def test_every_command_of_a_configuration_reads_one_history_from_any_folder(
    moto_server: str, tmp_path: Path
) -> None:
    folder = tmp_path / "class20"
    folder.mkdir()
    config = write_config(folder, moto_server, labs_toml(pair(52)))
    config.write_text(
        config.read_text().replace(f"sqlite:///{folder / 'auditor.db'}", "sqlite:///auditor.db")
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = cli_in(folder, "provision", "--config", "config.toml")
    assert built.returncode == 0, built.stderr
    status = cli_in(elsewhere, "status", "--config", "../class20/config.toml")
    assert status.returncode == 0, status.stderr
    database_line, _, lab_line = status.stdout.splitlines()
    assert database_line == f"database: sqlite:///{folder / 'auditor.db'}"
    assert lab_line.split()[:2] == ["pair-52", "active"]
    assert not (elsewhere / "auditor.db").exists()
    report = cli_in(elsewhere, "report", "--format", "json", "--config", "../class20/config.toml")
    assert json.loads(report.stdout)["database"] == f"sqlite:///{folder / 'auditor.db'}"


def cli_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run from that folder."""
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args], cwd=folder, capture_output=True, text=True, timeout=120
    )


def test_status_shows_the_expiry_the_roster_says_now(moto_server: str, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    header = "name,origin_account_id,destination_account_id,origin_role_arn,destination_role_arn,expires_at\n"
    line = "pair-53,100000000053,200000000053,{o},{d},{at}\n"
    arns = {
        "o": "arn:aws:iam::100000000053:role/OrganizationAccountAccessRole",
        "d": "arn:aws:iam::200000000053:role/OrganizationAccountAccessRole",
    }
    roster.write_text(header + line.format(at="2030-01-01T17:00:00Z", **arns))
    config = write_config(tmp_path, moto_server, "")
    config.write_text(config.read_text().replace("[lab]\n", '[lab]\nroster = "roster.csv"\n', 1))
    assert run_cli("provision", "--config", str(config)).returncode == 0
    roster.write_text(header + line.format(at="2030-01-02T09:00:00Z", **arns))
    status = json.loads(run_cli("status", "--format", "json", "--config", str(config)).stdout)
    assert status["labs"][0]["expires_at"] == "2030-01-02T09:00:00Z"
    assert load_config(config).labs[0].name == "pair-53"


def _runs(database: Path, lab: str) -> int:
    store = Store.from_url(f"sqlite:///{database}")
    try:
        return len(store.runs_since(None, [lab]).get(lab, []))
    finally:
        store.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _minutes(count: int) -> timedelta:
    return timedelta(minutes=count)


def test_a_lab_never_built_whose_building_failed_is_built_at_a_later_reconcile(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator not up yet when the daemon starts (docker-compose starts them side by side): the
    lab is built at a later reconcile, once, and never reset after."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.005)
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    config = make_config((pair(54),), endpoint_url=moto_server, database_url=url)
    daemon = Service(config, open_context(config))
    emulator_up = threading.Event()

    def not_up_yet(request: object, **_: object) -> None:
        if not emulator_up.is_set():
            raise EndpointConnectionError(endpoint_url=moto_server)

    for side in (pair(54).origin, pair(54).destination):
        daemon.context.sessions.hook(side, "before-send", not_up_yet, first=True)
    with capture_logs() as logs:
        daemon.build_labs_never_built(at_start=True)
    assert [e["lab"] for e in logs if e["event"] == "lab_not_built_yet"] == ["pair-54"]
    assert daemon.database().state_of("pair-54") is LabState.PLANNED

    emulator_up.set()
    daemon.reconcile()
    assert daemon.database().state_of("pair-54") is LabState.ACTIVE
    daemon.reconcile()
    assert [entry.event.value for entry in daemon.database().lifecycle("pair-54")] == ["provisioned"]
