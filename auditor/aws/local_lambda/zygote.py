"""The auditor's side of one zygote: a pre-started Python (sandbox.py) that forks one child per run.

Starting Python and importing boto3 costs far more than the function itself. So the zygote is started
once, with the auditor's environment minus every AWS_* and AUDITOR_* variable; it imports boto3 and
exercises botocore once (no session survives), then forks one child per run. The run's environment,
credentials included, goes straight from the auditor to that child through a pipe that only the child
reads: the zygote never holds a lab's secrets, so no later child can find them in the memory it
inherits. The zygote kills a child (and anything it started) at its timeout and reports how each one
ended. Its life is bound to its channel: when the auditor closes it, or exits, the zygote kills its
children and exits too.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SANDBOX = str(Path(__file__).with_name("sandbox.py"))
# What the zygote needs of the platform; elsewhere every run is a fresh interpreter.
CAN_FORK = all(
    hasattr(module, name)
    for module, name in ((os, "fork"), (os, "waitid"), (socket, "send_fds"), (socket, "SOCK_SEQPACKET"))
)
RESULT_MARKER = "\x1elab-auditor-result\x1e"
_READY_LIMIT = 1 << 18  # the zygote's first message: the names of the modules it has loaded
_STOP_GRACE = 5.0  # for the zygote to end its runs and exit, once its channel is closed
_REPORT_GRACE = 30.0  # past a run's timeout, for the zygote's report, before it is taken for lost


@dataclass(frozen=True)
class Completed:
    """How a run of the function ended: its exit code (None: killed at its timeout), what it printed,
    and its answer (None: it gave none)."""

    returncode: int | None
    stdout: bytes
    stderr: bytes

    @classmethod
    def timed_out(cls) -> Completed:
        return cls(None, b"", b"")

    @property
    def answer(self) -> bytes | None:
        """What the handler returned, as JSON: the output between the last two result markers (the
        handler's own output comes before them)."""
        result = self._result()
        return result[0] if result is not None else None

    @property
    def calls(self) -> tuple[dict[str, str], ...]:
        """The AWS calls the handler made, as the sandbox recorded them (after the last marker)."""
        result = self._result()
        try:
            calls = json.loads(result[1]) if result is not None else []
        except ValueError:
            return ()
        if not isinstance(calls, list):
            return ()
        return tuple(
            {str(key): str(value) for key, value in call.items()} for call in calls if isinstance(call, dict)
        )

    def _result(self) -> tuple[bytes, bytes] | None:
        """(answer, calls) as the sandbox wrote them last, or None when it wrote neither."""
        parts = self.stdout.rsplit(RESULT_MARKER.encode(), 2)
        return (parts[1], parts[2]) if len(parts) == 3 else None


def base_environment() -> dict[str, str]:
    """The auditor's environment without its own AWS credentials and settings."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "AUDITOR_"))}


def encode_request(folder: str, handler: str, environment: Mapping[str, str]) -> bytes:
    """What a run of sandbox.py reads: where the function is, its handler, its whole environment."""
    return json.dumps(
        {"folder": folder, "handler": handler, "environment": dict(environment), "marker": RESULT_MARKER}
    ).encode()


def kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):  # the group is gone already
        os.killpg(pid, signal.SIGKILL)


class ZygoteLost(Exception):
    """The zygote is gone or never came up; `started`: whether the run had begun."""

    def __init__(self, message: str, *, started: bool = False) -> None:
        super().__init__(message)
        self.started = started


class Zygote:
    """One running zygote; thread-safe. Start it with `Zygote.start()`, end it with `close()`."""

    def __init__(
        self, process: subprocess.Popen[bytes], channel: socket.socket, preloaded: frozenset[str]
    ) -> None:
        self.process, self.channel, self.preloaded = process, channel, preloaded
        self._lock = threading.Lock()  # guards the channel and `_children`
        self._children: set[int] = set()  # runs under way, by pid (each leads its process group)

    @classmethod
    def start(cls, start_timeout: float) -> Zygote:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with tempfile.TemporaryFile() as stderr:
            try:
                process = subprocess.Popen(
                    [sys.executable, "-I", SANDBOX, "zygote", str(theirs.fileno())],
                    env=base_environment(),
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,  # a Ctrl-C meant for the auditor is not the zygote's to handle
                )
            except OSError:
                ours.close()
                raise
            finally:
                theirs.close()
            try:
                preloaded = _ready(ours, start_timeout)
            except ZygoteLost as lost:
                cls(process, ours, frozenset()).close()
                raise ZygoteLost(f"{lost}{_last_line(stderr)}") from None
        return cls(process, ours, preloaded)

    @property
    def pid(self) -> int:
        return self.process.pid

    def shadowed_by(self, names: Collection[str]) -> bool:
        """Whether a package of these files brings a module of the zygote's own (the zygote's copy
        would win, where on Lambda the package's would)."""
        top_level = {name.split("/", 1)[0].removesuffix(".py") for name in names}
        return bool(top_level & (self.preloaded | sys.stdlib_module_names))

    def run(self, folder: str, handler: str, environment: Mapping[str, str], timeout: float) -> Completed:
        """Run the handler in a child of the zygote; raises ZygoteLost if the zygote is gone."""
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            status_read = self._send(encode_request(folder, handler, environment), stdout, stderr, timeout)
            try:
                outcome = self._outcome(status_read, timeout + _REPORT_GRACE)
            finally:
                os.close(status_read)
            if outcome.get("timeout"):
                return Completed.timed_out()
            stdout.seek(0)
            stderr.seek(0)
            return Completed(int(outcome["exit"]), stdout.read(), stderr.read())

    def _send(self, request: bytes, stdout: IO[bytes], stderr: IO[bytes], timeout: float) -> int:
        """Ask for a run and hand its request to the child; the read end of its status pipe."""
        request_read, request_write = os.pipe()
        status_read, status_write = os.pipe()
        try:
            try:
                with self._lock:
                    socket.send_fds(
                        self.channel,
                        [json.dumps({"timeout": timeout}).encode()],
                        [request_read, stdout.fileno(), stderr.fileno(), status_write],
                    )
            finally:
                os.close(request_read)
                os.close(status_write)
            with open(request_write, "wb", closefd=False) as pipe:
                pipe.write(request)
        except OSError as error:
            os.close(status_read)
            raise ZygoteLost(f"the zygote is gone: {error}") from None
        finally:
            os.close(request_write)
        return status_read

    def _outcome(self, status_read: int, limit: float) -> dict[str, Any]:
        """The zygote's reports: the child's pid at once, then how it ended."""
        deadline = time.monotonic() + limit
        received = b""
        reports: dict[str, Any] = {}
        try:
            while "exit" not in reports and "timeout" not in reports:
                ready, _, _ = select.select([status_read], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(status_read, 4096) if ready else b""
                if not chunk:  # the zygote died, or stopped answering
                    if "pid" in reports:
                        kill_group(int(reports["pid"]))
                    self.close()
                    raise ZygoteLost("the zygote stopped answering", started=True)
                received += chunk
                *lines, received = received.split(b"\n")
                for line in lines:
                    reports.update(json.loads(line))
                    if "pid" in reports and "exit" not in reports and "timeout" not in reports:
                        with self._lock:
                            self._children.add(int(reports["pid"]))
        finally:
            if "pid" in reports:
                with self._lock:
                    self._children.discard(int(reports["pid"]))
        return reports

    def close(self) -> None:
        """Stop the zygote and every run under way; a run in progress ends as lost. Idempotent."""
        with self._lock:
            self.channel.close()  # the zygote sees the end of its channel, kills its children, exits
            children = set(self._children)
        try:
            self.process.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:  # stopped, or wedged: it cannot kill them, so we do
            self.process.kill()
            self.process.wait()
            for pid in children:
                kill_group(pid)


def _ready(channel: socket.socket, start_timeout: float) -> frozenset[str]:
    """Wait for the zygote's first message: the modules it has loaded."""
    channel.settimeout(start_timeout)
    try:
        message = channel.recv(_READY_LIMIT)
        if not message:
            raise ZygoteLost("the zygote did not start: it exited")
        preloaded = frozenset(json.loads(message)["modules"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ZygoteLost(f"the zygote did not start: {error or 'no answer'}") from None
    channel.settimeout(None)
    return preloaded


def _last_line(stream: IO[bytes]) -> str:
    stream.seek(0)
    lines = stream.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
    return f" ({lines[-1]})" if lines else ""
