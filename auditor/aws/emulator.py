"""The embedded AWS emulator: a moto server on a free loopback port.

Two lives: inside one process (`EmbeddedEmulator`, owned by whoever started it, gone with it), or a
lasting one in the background (`auditor emulator start`, or the first `auditor provision`), whose
address a state file beside the configuration keeps, so that the next commands find the labs the
previous one built.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from auditor.common.process import every_cpu
from auditor.common.stopping import wait_until_stopped

# moto answers for any credentials; these fake ones keep botocore from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
STATE_FILE = ".auditor-emulator.json"
SERVE_MODULE = "auditor.aws.emulator"
START_SECONDS = 60.0
STOP_SECONDS = 20.0


# The embedded emulator's one addition to moto: the code of a function, which moto keeps but never
# serves (its Code.Location names a real AWS host). Students' own code can then run in the local
# stand-in (auditor/aws/invoke.py). Loopback only, and the emulator holds no real data.
FUNCTION_CODE_PATH = "/__auditor__/function-code"


class EmbeddedEmulator:
    """A moto server in this process, from construction until close()."""

    def __init__(self) -> None:
        # moto takes a second to import, and only this optional emulator needs it: not every command.
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line a request is noise here
        app = _with_function_code(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def _with_function_code(app: Callable[..., Any]) -> Callable[..., Any]:
    """moto's WSGI app, answering also GET FUNCTION_CODE_PATH?account=&region=&function= with the zip."""
    from werkzeug.wrappers import Request, Response

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != FUNCTION_CODE_PATH:
            return app(environ, start_response)
        query = Request(environ).args
        code = _function_code(query.get("account", ""), query.get("region", ""), query.get("function", ""))
        if code is None:
            return Response(b"no such function", status=404)(environ, start_response)
        return Response(code, mimetype="application/zip")(environ, start_response)

    return serve


def _function_code(account: str, region: str, function: str) -> bytes | None:
    from moto.awslambda.models import lambda_backends

    try:
        code: bytes = lambda_backends[account][region].get_function(function).code_bytes
    except Exception:  # moto's own not-found errors, an unknown region or account
        return None
    return code


def operator_has_credentials(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the operator configured AWS credentials of their own (an emulator accepts fake ones)."""
    return bool(environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE"))


# ---------------------------------------------------------------------------------- the lasting one


class EmulatorError(Exception):
    """The lasting emulator could not be started or stopped (exit 1)."""


@dataclass(frozen=True)
class LastingEmulator:
    url: str
    pid: int
    started_at: str
    state_file: Path


def state_file_for(config_path: str) -> Path:
    """Where the lasting emulator of this configuration is written down: beside the file."""
    return Path(config_path).resolve().parent / STATE_FILE


def running_emulator(state_file: Path) -> LastingEmulator | None:
    """The lasting emulator the state file names, if it still runs and answers; None otherwise."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        emulator = LastingEmulator(str(state["url"]), int(state["pid"]), str(state["started_at"]), state_file)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _is_our_server(emulator.pid) or not answers(emulator.url):
        return None
    return emulator


def start_emulator(state_file: Path) -> tuple[LastingEmulator, bool]:
    """The running lasting emulator, or a new one started in the background; True if it was started now."""
    if (running := running_emulator(state_file)) is not None:
        return running, False
    log_file = state_file.with_suffix(".log")
    with log_file.open("ab") as log:
        # A session of its own: Ctrl-C at the terminal that started it does not reach it.
        process = subprocess.Popen(
            [sys.executable, "-m", SERVE_MODULE],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            text=True,
        )
    url = _first_line(process)
    if not url.startswith("http://"):
        process.kill()
        process.wait()
        raise EmulatorError(f"the emulator did not start (its log: {log_file})")
    emulator = LastingEmulator(url, process.pid, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), state_file)
    _write_state(emulator)
    return emulator, True


def stop_emulator(state_file: Path) -> LastingEmulator | None:
    """Stop the lasting emulator (and everything in it); None if none was running."""
    running = running_emulator(state_file)
    if running is not None:
        try:
            pidfd = os.pidfd_open(running.pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is not None:
            try:
                os.kill(running.pid, signal.SIGTERM)
                ready, _, _ = select.select([pidfd], [], [], STOP_SECONDS)
                if not ready:
                    os.kill(running.pid, signal.SIGKILL)
                    select.select([pidfd], [], [], STOP_SECONDS)
            finally:
                os.close(pidfd)
    state_file.unlink(missing_ok=True)
    return running


def _first_line(process: subprocess.Popen[str]) -> str:
    """The server's address, the one line it prints; "" if it ends or says nothing in time."""
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.append(process.stdout.readline() if process.stdout else "")
    )
    reader.start()
    reader.join(START_SECONDS)
    process.stdout.close()
    return lines[0].strip() if lines else ""


def _write_state(emulator: LastingEmulator) -> None:
    document = {"url": emulator.url, "pid": emulator.pid, "started_at": emulator.started_at}
    partial = emulator.state_file.with_suffix(".tmp")
    partial.write_text(json.dumps(document) + "\n", encoding="utf-8")
    partial.replace(emulator.state_file)


def _is_our_server(pid: int) -> bool:
    """Whether the process runs this module (not another that took a recycled pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return SERVE_MODULE.encode() in command


def answers(url: str) -> bool:
    """Whether something listens at the emulator's address (a name that does not resolve yet, as a
    docker-compose service still starting, does not)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


def serve() -> None:
    """The lasting emulator's own process: print the address, then serve until SIGTERM."""
    every_cpu()  # not the CPU the auditor that started it keeps to
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emulator = EmbeddedEmulator()
    print(emulator.url, flush=True)
    # Nothing more goes to standard output: the process that started us stops reading it.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the rest of this process's life)
    wait_until_stopped(stop)
    emulator.close()


if __name__ == "__main__":
    serve()
