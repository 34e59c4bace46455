"""Whether the labs of an "embedded" configuration still have an emulator to stand in (`auditor status`).

Told without calling AWS: the lasting emulator's state file beside the configuration (the process it
names, and its port), and, when none runs, whether a daemon of this configuration answers on its
health port (a daemon with no lasting emulator keeps the class in an emulator of its own).
"""

from __future__ import annotations

import json
from enum import StrEnum

from auditor.aws.emulator import running_emulator, state_file_for
from auditor.domain.config import EMBEDDED, Config

PROBE_SECONDS = 1.0
_WILDCARDS = ("", "0.0.0.0", "::")


class EmulatorState(StrEnum):
    RUNNING = "running"  # the lasting emulator of `auditor emulator start` runs
    DAEMON = "daemon"  # none runs, but the daemon answers: the class is in the daemon's own emulator
    STOPPED = "stopped"  # none runs: whatever was built in one is gone


def emulator_state(config: Config) -> EmulatorState | None:
    """The embedded emulator's state for this configuration; None when it does not use one."""
    if config.aws.endpoint_url != EMBEDDED:
        return None
    if running_emulator(state_file_for(config.path)) is not None:
        return EmulatorState.RUNNING
    if daemon_answers(config.daemon.health_host, config.daemon.health_port):
        return EmulatorState.DAEMON
    return EmulatorState.STOPPED


def daemon_answers(host: str, port: int) -> bool:
    """Whether a daemon's `/healthz` answers on this address (its document, healthy or not)."""
    import urllib.error  # only `status` on a stopped emulator asks: no other command pays the import
    import urllib.request

    if port == 0:
        return False
    host = "127.0.0.1" if host in _WILDCARDS else host
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_SECONDS) as answer:
            body = answer.read(4096)
    except urllib.error.HTTPError as error:  # 503: a daemon that is not healthy yet is still there
        body = error.read(4096)
    except (OSError, ValueError):
        return False
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return isinstance(document, dict) and "healthy" in document
