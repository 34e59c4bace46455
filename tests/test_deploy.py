"""What deploy/README.md promises of the daemon as docker-compose runs it: the emulator trial's class
is built before its first audit even when the emulator starts after the daemon, and replicas that share
one network namespace each take their own page port from `AUDITOR_HEALTH_PORT`. Real `auditor daemon`
processes on a moto server (and PostgreSQL for the replicas)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import test_daemon
from sqlalchemy import URL
from test_daemon import RunningDaemon, config_text, free_port, wait_for

from auditor.domain.config import DaemonSettings, load_config
from auditor.web.server import HEALTH_PORT_VARIABLE, with_health_port_from
from bench.common import own_database
from bench.latency_proxy import LatencyProxy
from conftest import pair

pytestmark = pytest.mark.slow  # the daemon in processes of its own

start_daemon = test_daemon.start_daemon  # the fixture, shared

REPLICA = '[daemon]\nmode = "replicas"\ntakeover = "5s"\n'


# ---------------------------------------------------------------------------- the emulator trial


def test_a_daemon_started_before_its_emulator_waits_for_it_and_builds_the_class_before_auditing(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    """docker-compose starts the daemon and moto side by side: the daemon waits until the emulator
    answers, builds the labs never built, and only then audits, so no audit finds them missing."""
    labs = (pair(61), pair(62))
    emulator_port = free_port()
    config = config_text(tmp_path, f"http://127.0.0.1:{emulator_port}", labs, "1h", free_port())
    daemon = start_daemon(config)
    wait_for(lambda: daemon.events("waiting_for_emulator"), 60, "the daemon to wait for the emulator")
    assert not daemon.events("lab_audited") and not daemon.events("planning_failed")

    with LatencyProxy(moto_server, delay=0.0, port=emulator_port):  # the emulator comes up
        wait_for(lambda: len(daemon.events("lab_audited")) >= 2, 120, "both labs audited")
        events = [entry["event"] for entry in daemon.events()]
        assert events.index("building_labs_never_built") < events.index("lab_audited")
        assert {entry["lab"]: entry["verdict"] for entry in daemon.events("lab_audited")} == {
            "pair-61": "conformant",
            "pair-62": "conformant",
        }
        assert not daemon.events("planning_failed")


# ----------------------------------------------------------------------- replicas' health ports


def test_the_health_port_variable_wins_over_the_file_and_a_bad_one_is_refused() -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "deploy" / "config.replicas.toml", env={})
    assert config.daemon.health_port == DaemonSettings().health_port == 8080
    assert with_health_port_from(config, {}) is config
    assert with_health_port_from(config, {HEALTH_PORT_VARIABLE: "8082"}).daemon.health_port == 8082
    assert with_health_port_from(config, {HEALTH_PORT_VARIABLE: "0"}).daemon.health_port == 0
    assert with_health_port_from(config, {HEALTH_PORT_VARIABLE: "8082"}).daemon.mode == "replicas"


@pytest.mark.parametrize("value", ["80a", "-1", "65536", "8O80"])
def test_a_health_port_variable_that_is_no_port_is_refused_naming_it(
    moto_server: str, tmp_path: Path, value: str
) -> None:
    config = config_text(tmp_path, moto_server, (pair(63),), "1h", free_port())
    result = run_daemon_briefly(config, {HEALTH_PORT_VARIABLE: value})
    assert result.returncode == 2, result.stderr
    assert f"environment: {HEALTH_PORT_VARIABLE}: {value!r} is not a port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "auditor.db").exists()  # refused before anything was touched


def test_a_taken_health_port_from_the_variable_is_refused_naming_the_variable(
    moto_server: str, tmp_path: Path
) -> None:
    config = config_text(tmp_path, moto_server, (pair(63),), "1h", free_port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_daemon_briefly(config, {HEALTH_PORT_VARIABLE: str(port)})
    assert result.returncode == 2, result.stderr
    assert f"environment: {HEALTH_PORT_VARIABLE}: 127.0.0.1:{port} is already in use" in result.stderr


def run_daemon_briefly(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`auditor daemon` that is expected to stop at once (a configuration error)."""
    return subprocess.run(
        [sys.executable, "-m", "auditor", "daemon", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def test_replicas_on_one_host_sharing_one_file_each_serve_their_own_port(
    moto_server: str, postgres_server: URL, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    """Two replicas in one network namespace, one configuration file with one health_port: with the
    file's port alone the second is refused (a crash loop under a supervisor); with AUDITOR_HEALTH_PORT
    each serves its own."""
    file_port = free_port()
    config = config_text(tmp_path, moto_server, (pair(64),), "1h", file_port)
    config.write_text(config.read_text().replace("[daemon]\n", REPLICA, 1))
    with own_database(postgres_server, "auditor_ports") as url:
        first = start_daemon(config, env={"AUDITOR_DATABASE_URL": url})
        wait_for(lambda: first.events("daemon_started"), 90, "the first replica to start")
        clash = run_daemon_briefly(config, {"AUDITOR_DATABASE_URL": url})
        assert clash.returncode == 2
        assert f"daemon.health_port: 127.0.0.1:{file_port} is already in use" in clash.stderr

        own_port = free_port()
        second = start_daemon(config, env={"AUDITOR_DATABASE_URL": url, HEALTH_PORT_VARIABLE: str(own_port)})
        wait_for(lambda: second.events("daemon_started"), 90, "the second replica to start")
        assert second.events("daemon_started")[0]["health_port"] == own_port
        second.port = own_port
        for replica in (first, second):
            assert replica.get("/metrics")[0] == 200
            assert replica.process.poll() is None
