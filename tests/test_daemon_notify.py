"""`auditor daemon` as a subprocess on a moto server: its notifications reach a receiver, its page shows the lab.

Also the refusals at start: off loopback without a token, or on a port already taken, the daemon
exits 2 naming the setting before it touches any database.
"""

from __future__ import annotations

import json
import signal
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import test_daemon
from receiver import running_receiver
from test_daemon import RunningDaemon, config_text, free_port, open_trust, provision, runs_of, wait_for

from auditor.domain.model import Verdict
from conftest import labs_toml, pair, run_cli, write_config

start_daemon = test_daemon.start_daemon  # the fixture, shared

SECRET = "s3cr3t-hook-password"


def notify_section(*urls: str) -> str:
    quoted = ", ".join(f'"{url}"' for url in urls)
    return f'[notify]\nurls = [{quoted}]\non = ["broken", "drifted", "error", "recovered"]\n'


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_transition_is_notified_once_within_10_s_and_the_page_shows_it(
    moto_server: str, tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    labs = (pair(1), pair(2))
    runtime = provision(moto_server, labs)
    with running_receiver() as receiver:
        dead = f"json://hook:{SECRET}@127.0.0.1:{closed_port()}/down"  # a target that is down
        extra = notify_section(dead, receiver.url(secret=SECRET))
        config = config_text(tmp_path, moto_server, labs, "2s", free_port(), extra=extra)
        daemon = start_daemon(config)
        database = tmp_path / "auditor.db"
        wait_for(lambda: runs_of(database, "pair-01"), 60, "a first audit")
        assert runs_of(database, "pair-01")[-1].verdict is Verdict.CONFORMANT

        open_trust(runtime, labs[0])
        wait_for(lambda: runs_of(database, "pair-01")[-1].verdict is Verdict.DRIFTED, 30, "the drift")
        seen = time.monotonic()
        message = receiver.next(timeout=10)
        assert time.monotonic() - seen < 10
        assert message["title"] == "pair-01 is drifted"
        assert message["message"].startswith("pair-01 is drifted since ")
        assert ", was conformant: trust policy lets any principal" in message["message"]
        assert message["type"] == "failure"  # a critical finding
        assert f"Details: http://127.0.0.1:{daemon.port}/labs/pair-01" in message["message"]

        # Two more audits with the same verdict send nothing; the dead target held up no audit.
        drifted_runs = len(runs_of(database, "pair-01"))
        wait_for(lambda: len(runs_of(database, "pair-01")) >= drifted_runs + 2, 30, "two more audits")
        assert [body["title"] for body in receiver.all] == ["pair-01 is drifted"]

        status, page = daemon.get("/labs/pair-01")
        assert status == 200 and '<span class="badge drifted">drifted</span>' in page
        _, metrics = daemon.get("/metrics")
        assert 'auditor_notifications_total{outcome="sent"} 1.0' in metrics
        assert 'auditor_notifications_total{outcome="retried"}' in metrics  # the dead target
        status, api = daemon.get("/api/labs")
        verdicts = {lab["lab"]: lab["verdict"] for lab in json.loads(api)["labs"]}
        assert status == 200 and verdicts == {"pair-01": "drifted", "pair-02": "conformant"}

        # A restart remembers the lab's standing from the database: nothing is announced again.
        daemon.signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=20) == 0
        before_restart = len(runs_of(database, "pair-01"))
        again = start_daemon(config)
        wait_for(
            lambda: len(runs_of(database, "pair-01")) >= before_restart + 2, 60, "audits after the restart"
        )
        assert [body["title"] for body in receiver.all] == ["pair-01 is drifted"]
        again.signal(signal.SIGTERM)
        assert again.process.wait(timeout=20) == 0

    log = daemon.log() + again.log()
    assert "notification_sent" in log and "notification_retrying" in log
    assert SECRET not in log


@pytest.mark.slow  # the CLI in a process of its own
def test_off_loopback_without_the_token_the_daemon_refuses_to_start(tmp_path: Path) -> None:
    extra = '[daemon]\nhealth_port = 8080\nhealth_host = "0.0.0.0"\nweb_token_env = "PAGE_TOKEN"\n'
    path = write_config(tmp_path, "http://127.0.0.1:9", labs_toml(pair(1)))
    path.write_text(path.read_text().replace("[daemon]\nhealth_port = 0\n", textwrap.dedent(extra)))
    result = run_cli("daemon", "--config", str(path), env={"PAGE_TOKEN": ""}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{path}: daemon.web_token_env:" in result.stderr
    assert "PAGE_TOKEN is unset or empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "auditor.db").exists()


@pytest.mark.slow  # the CLI in a process of its own
def test_a_port_already_taken_stops_the_daemon_with_exit_2_naming_health_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, "http://127.0.0.1:9", labs_toml(pair(1)))
        path.write_text(path.read_text().replace("health_port = 0", f"health_port = {port}"))
        result = run_cli("daemon", "--config", str(path), timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{path}: daemon.health_port: 127.0.0.1:{port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "auditor.db").exists()
