"""`LocalLambda`: runs a deployed function's handler in a process of its own, as Lambda's Python
runtime would, for emulators that cannot run code. Its owner (the auditor's `Runtime` bundle) opens
it, and closes it; nothing of it is global.

Each run is a fresh child: forked from a zygote (a pre-started Python that has imported boto3; see
zygote.py) when it can, else a new interpreter. Nothing of one run (its credentials, environment,
imported modules) reaches another. Either way the run leads a process group of its own, which is
killed at the function's timeout and when the run ends, so that nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import TracebackType

import structlog

from auditor.aws.local_lambda.zygote import (
    CAN_FORK,
    SANDBOX,
    Completed,
    Zygote,
    ZygoteLost,
    encode_request,
    kill_group,
)

log = structlog.get_logger()

STOPPED_DURING_THE_RUN = b"the local Lambda stand-in stopped during the run"


class LocalLambdaClosed(RuntimeError):
    """A run was asked of a local Lambda stand-in that its owner has closed."""


@dataclass
class _InThisProcess:
    """What a LocalLambda has started in one process; a forked copy of its owner starts its own."""

    lock: threading.Lock = field(default_factory=threading.Lock)  # guards every field below
    zygote: Zygote | None = None
    zygote_failed: bool = False  # it could not start here: every run is a fresh interpreter
    fresh: set[subprocess.Popen[bytes]] = field(default_factory=set)  # fresh runs, not yet reaped

    def forget(self, zygote: Zygote) -> None:
        """A lost zygote: the next run starts a new one."""
        with self.lock:
            if self.zygote is zygote:
                self.zygote = None
        zygote.close()

    def close(self) -> None:
        with self.lock:
            zygote, self.zygote = self.zygote, None
            for process in self.fresh:  # unreaped: their process group ids are still theirs
                kill_group(process.pid)
        if zygote is not None:
            zygote.close()

    def let_go(self) -> None:
        """In a forked copy of the owner: drop this copy of the owner's channel to its zygote, which
        stays the owner's to use and to stop."""
        if self.zygote is not None:
            self.zygote.channel.close()


class LocalLambda:
    """The local Lambda stand-in. Thread-safe; starts its zygote at the first run that can use one,
    replaces a lost one, and stops it and every run under way on `close()` (or at the end of a
    `with` block). A closed stand-in refuses to run (LocalLambdaClosed).

    `preforked=False`: a fresh interpreter for every run (the benchmarks compare both).
    """

    def __init__(self, *, preforked: bool = True, start_timeout: float = 60.0) -> None:
        self.preforked = preforked and CAN_FORK
        self.start_timeout = start_timeout
        self._closed = False
        # By process id: a forked copy of this object must not use, nor stop, the owner's processes.
        self._processes: dict[int, _InThisProcess] = {}

    def __enter__(self) -> LocalLambda:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def zygote_pid(self) -> int | None:
        """The running zygote's process id, if there is one (its children's CPU is counted there)."""
        here = self._processes.get(os.getpid())
        zygote = here.zygote if here is not None else None
        return zygote.pid if zygote is not None else None

    def start(self) -> None:
        """Start the zygote now rather than at the first run (it takes about a second of CPU)."""
        if self.preforked:
            self._zygote()

    def run(self, archive: bytes, handler: str, environment: Mapping[str, str], timeout: float) -> Completed:
        """Run `handler` of the zip `archive` with exactly `environment`, for at most `timeout` seconds."""
        self._refuse_if_closed()
        with tempfile.TemporaryDirectory(prefix="lab-auditor-invoke-") as folder:
            with zipfile.ZipFile(io.BytesIO(archive)) as package:
                package.extractall(folder)
                names = package.namelist()
            completed = self._run_forked(folder, names, handler, environment, timeout)
            if completed is None:
                completed = self._run_fresh(folder, handler, environment, timeout)
        return completed

    def close(self) -> None:
        """Stop the zygote and every run under way (a run in progress ends as a failure). Idempotent."""
        self._closed = True
        here = os.getpid()
        for pid in list(self._processes):
            started = self._processes.pop(pid, None)
            if started is not None and pid == here:
                started.close()
            elif started is not None:
                started.let_go()

    # ------------------------------------------------------------------------------------- internals

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise LocalLambdaClosed("the local Lambda stand-in is closed")

    def _here(self) -> _InThisProcess:
        pid = os.getpid()
        here = self._processes.get(pid)
        if here is None:
            here = self._processes.setdefault(pid, _InThisProcess())  # atomic: one per process
            for other in list(self._processes):
                inherited = self._processes.pop(other, None) if other != pid else None
                if inherited is not None:  # this is a forked copy of the owner
                    inherited.let_go()
        return here

    def _zygote(self) -> Zygote | None:
        """This process's zygote, started if need be; None if it cannot start here."""
        here = self._here()
        with here.lock:
            self._refuse_if_closed()
            if here.zygote is None and not here.zygote_failed:
                try:
                    here.zygote = Zygote.start(self.start_timeout)
                except (ZygoteLost, OSError) as error:
                    here.zygote_failed = True
                    log.warning(
                        "local_lambda_zygote_unavailable", error=str(error), fallback="a fresh Python per run"
                    )
            return here.zygote

    def _run_forked(
        self,
        folder: str,
        names: Collection[str],
        handler: str,
        environment: Mapping[str, str],
        timeout: float,
    ) -> Completed | None:
        """A run in a child of the zygote; None when it must be a fresh interpreter instead."""
        zygote = self._zygote() if self.preforked else None
        if zygote is None or zygote.shadowed_by(names):
            return None
        try:
            return zygote.run(folder, handler, environment, timeout)
        except ZygoteLost as lost:
            self._here().forget(zygote)
            if lost.started:
                # It may have done its work: it is not run twice, but reported as the function's failure.
                return Completed(1, b"", STOPPED_DURING_THE_RUN)
            self._refuse_if_closed()  # it was closed under this run, which had not begun
            return None  # the function never ran: a fresh interpreter runs it

    def _run_fresh(
        self, folder: str, handler: str, environment: Mapping[str, str], timeout: float
    ) -> Completed:
        """A new interpreter for this run: simple, but it imports boto3 anew every time (~0.4 s of CPU)."""
        here = self._here()
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            with here.lock:
                self._refuse_if_closed()
                process = subprocess.Popen(
                    [sys.executable, "-I", SANDBOX, "run"],
                    env=dict(environment),
                    cwd=folder,
                    stdin=subprocess.PIPE,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,  # its own process group, killed with all it started
                )
                here.fresh.add(process)
            try:
                _hand_over(process, encode_request(folder, handler, environment))
                ended = _ended_within(process, timeout)
            finally:
                with here.lock:
                    kill_group(process.pid)  # whatever it started and left behind goes with it
                    here.fresh.discard(process)
                process.wait()
            if self._closed and process.returncode == -signal.SIGKILL:
                return Completed(1, b"", STOPPED_DURING_THE_RUN)  # close() killed it
            if not ended:
                return Completed.timed_out()
            stdout.seek(0)
            stderr.seek(0)
            return Completed(process.returncode, stdout.read(), stderr.read())


def _ended_within(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the process ends within `timeout`. Where the platform can tell without reaping it
    (Linux), it stays unreaped, so that its process group id cannot be another's when it is killed;
    elsewhere it is reaped, and its group id stays its own only while something of it still runs."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def _hand_over(process: subprocess.Popen[bytes], request: bytes) -> None:
    """Give a fresh run its request on its standard input."""
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError), process.stdin:  # it ended before reading it
        process.stdin.write(request)
