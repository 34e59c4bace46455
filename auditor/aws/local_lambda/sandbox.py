"""The program of the local Lambda stand-in's processes; `auditor.aws.local_lambda.zygote` and
`auditor.aws.local_lambda.stand_in` start it as a script, never import it for its work:

    python -I sandbox.py zygote CHANNEL_FD   a pre-started Python that forks one child a run
    python -I sandbox.py run                 one run in this fresh interpreter, asked on stdin

It imports the standard library only (boto3 too, in the zygote, on purpose), so that a fresh run
starts with nothing of the auditor loaded, and it runs wherever the file is, installed or not.

The zygote imports boto3 and exercises botocore once, then waits on its channel (a SOCK_SEQPACKET
socket). Each request is one message, {"timeout": seconds}, carrying four file descriptors: the read
end of a pipe that holds the run's request (folder, handler, environment, marker), the run's stdout
and stderr files, and the write end of a status pipe. The zygote forks a child for it, reports
{"pid": ...} on the status pipe at once, and {"exit": code} or {"timeout": true} when the run ends.
The request pipe is read by the child only: the zygote never holds a lab's secrets. When the channel
ends (the auditor closed it, or exited), the zygote kills its children and exits.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import importlib.abc
import importlib.util
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple, NoReturn

_MESSAGE_LIMIT = 4096


# ------------------------------------------------------------------------------------- one run


def answer_of(handler: str) -> str:
    """The handler's answer as JSON; an exception it raises is an answer too, as Lambda reports it."""
    module_name, function_name = handler.rsplit(".", 1)
    try:
        answer = getattr(importlib.import_module(module_name), function_name)({}, None)
        return json.dumps(answer)
    except Exception as error:
        return json.dumps(
            {"ok": False, "stage": "unhandled", "error_code": type(error).__name__, "error": str(error)}
        )


def record_aws_calls() -> list[dict[str, str]]:
    """The AWS calls this process makes from now on, as they are made: service, operation, the role
    an AssumeRole asks for, and the error code of a call that failed (nothing else: no credentials).

    botocore's one door for every call (`BaseClient._make_api_call`, which AWS's own X-Ray SDK
    instruments the same way) is wrapped, so any client of any session the handler makes is seen:
    at once when botocore is loaded (a forked run), else when the handler first imports it (a fresh
    run starts without it, and stays so for a handler that makes no AWS call).
    """
    calls: list[dict[str, str]] = []
    if "botocore.client" in sys.modules:
        _wrap_calls(sys.modules["botocore.client"], calls)
    else:
        sys.meta_path.insert(0, _WrapWhenImported(calls))
    return calls


def _wrap_calls(module: Any, calls: list[dict[str, str]]) -> None:
    base_client = module.BaseClient
    make_api_call = base_client._make_api_call

    def recorded(client: Any, operation: str, params: dict[str, Any]) -> Any:
        call = {"service": client.meta.service_model.endpoint_prefix, "operation": operation}
        if operation == "AssumeRole" and isinstance(params.get("RoleArn"), str):
            call["role_arn"] = params["RoleArn"]
        calls.append(call)
        try:
            return make_api_call(client, operation, params)
        except Exception as error:
            call["error"] = _error_code(error)
            raise

    base_client._make_api_call = recorded


def _error_code(error: Exception) -> str:
    """A ClientError's code, else the exception's name (a connection error has no answer to read)."""
    answer = getattr(error, "response", None)
    details = answer.get("Error") if isinstance(answer, dict) else None
    code = details.get("Code") if isinstance(details, dict) else None
    return str(code or type(error).__name__)


class _WrapWhenImported(importlib.abc.MetaPathFinder):
    """Wraps botocore's calls as soon as `botocore.client` has been executed."""

    def __init__(self, calls: list[dict[str, str]]) -> None:
        self.calls = calls

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "botocore.client":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader, calls = spec.loader, self.calls
        exec_module = loader.exec_module

        def exec_and_wrap(module: Any) -> None:
            exec_module(module)
            _wrap_calls(module, calls)

        loader.exec_module = exec_and_wrap  # type: ignore[method-assign]
        return spec


def run_handler(folder: str, handler: str, marker: str) -> int:
    """Run the handler found in `folder`, write `marker`, its answer, `marker` and the AWS calls it made
    to stdout; the exit code.

    It ends as a Lambda invocation does, when the handler returns: the caller leaves at once with
    this code (no interpreter teardown, which in a forked child would only copy shared pages).
    """
    os.chdir(folder)
    sys.path.insert(0, folder)
    calls = record_aws_calls()
    code = 0
    try:
        answer = answer_of(handler)
        sys.stdout.write(marker + answer + marker + json.dumps(calls))
    except SystemExit as exit_:  # as the interpreter would end on it
        code = _exit_code(exit_)
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = code or 120  # what the interpreter answers when it cannot flush stdout at exit
    return code


def _exit_code(exit_: SystemExit) -> int:
    if exit_.code is None or isinstance(exit_.code, int):
        return exit_.code or 0
    print(exit_.code, file=sys.stderr)
    return 1


# ------------------------------------------------------------------------------------- the zygote


def warm() -> None:
    """Load, once, what every run's handler would load: boto3, the service models, botocore's lazy imports.

    Sessions share one data loader per data path, as the auditor's own sessions do: the service
    models are parsed once, here, not in every child. Then an STS and an S3 client each make one call
    against canned answers, so that every module botocore imports lazily is loaded here too. That
    session is thrown away; each child's handler makes its own. (boto3 is imported here, not at the
    top of this file: a fresh run must start without it.)
    """
    import boto3
    import botocore.loaders
    import botocore.session
    from botocore.awsrequest import AWSResponse

    botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)

    def answer(request: Any, event_name: str, **_: Any) -> Any:
        service = "sts" if ".sts." in event_name else "s3"
        return AWSResponse(request.url, 200, {}, _CannedBody(_CANNED[service]))

    session = boto3.session.Session("warm", "warm", "warm", region_name="us-east-1")
    session.events.register("before-send", answer)
    calls: dict[str, Callable[[Any], object]] = {
        "sts": lambda client: client.assume_role(
            RoleArn="arn:aws:iam::111111111111:role/r", RoleSessionName="warm"
        ),
        "s3": lambda client: client.list_buckets(),
    }
    for service, call in calls.items():
        with contextlib.suppress(Exception):
            call(session.client(service, endpoint_url="http://127.0.0.1:9"))


_CANNED = {
    "sts": b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
    b"<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>B</SecretAccessKey>"
    b"<SessionToken>C</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>"
    b"<AssumedRoleUser><Arn>arn:aws:sts::111111111111:assumed-role/r/s</Arn>"
    b"<AssumedRoleId>AROAWARM:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>",
    "s3": b"<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>",
}


class _CannedBody:
    """What botocore reads an HTTP body from (urllib3's response), for the canned answers."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def loaded_modules() -> list[str]:
    """The top-level modules this process has loaded: a function that brings its own copy of one
    would get this process's instead (the auditor runs such a function in a fresh interpreter)."""
    return sorted({name.split(".", 1)[0] for name in sys.modules})


class ChildFds(NamedTuple):
    """In a forked child: where its request comes from and where its output goes."""

    request: int
    stdout: int
    stderr: int


def _report(fd: int, outcome: dict[str, object]) -> None:
    with contextlib.suppress(OSError):  # the auditor stopped listening: nothing to tell
        os.write(fd, json.dumps(outcome).encode() + b"\n")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


class Zygote:
    """Forks one child per request from the channel, kills it at its timeout, reports how it ended."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.running: dict[int, tuple[float, int]] = {}  # pid -> (deadline, status fd)
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        self.selector = selectors.DefaultSelector()

    def serve(self) -> ChildFds | None:
        """Until the channel ends (None); in a forked child, returns that child's file descriptors."""
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_write)  # a child's end wakes the select below
        self.selector.register(self.channel, selectors.EVENT_READ)
        self.selector.register(self.wake_read, selectors.EVENT_READ)
        self.channel.send(json.dumps({"modules": loaded_modules()}).encode())
        while True:
            deadlines = [deadline for deadline, _ in self.running.values()]
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self.selector.select(wait):
                if key.fileobj == self.wake_read:
                    self._drain_wakeups()
                    continue
                message, fds, _, _ = socket.recv_fds(self.channel, _MESSAGE_LIMIT, 4)
                if not message:
                    for pid in self.running:
                        _kill_group(pid)
                    return None
                child = self._start(message, fds)
                if child is not None:
                    return child
            self._reap_ended()
            self._kill_overdue()

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_read, 512):
                pass

    def _start(self, message: bytes, fds: list[int]) -> ChildFds | None:
        """Fork the run asked for; in the child, its file descriptors, in the zygote None."""
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            return None
        request_fd, stdout_fd, stderr_fd, status_fd = fds
        timeout = float(json.loads(message)["timeout"])
        pid = os.fork()
        if pid == 0:
            self._leave_to_the_child(status_fd)
            os.setpgid(0, 0)
            return ChildFds(request_fd, stdout_fd, stderr_fd)
        with contextlib.suppress(OSError):  # the child may have done it first, or be gone already
            os.setpgid(pid, pid)
        for fd in (request_fd, stdout_fd, stderr_fd):
            os.close(fd)
        _report(status_fd, {"pid": pid})
        self.running[pid] = (time.monotonic() + timeout, status_fd)
        return None

    def _leave_to_the_child(self, status_fd: int) -> None:
        """In a forked child: let go of everything of the zygote's."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.channel.close()
        for fd in (self.wake_read, self.wake_write, status_fd, *(fd for _, fd in self.running.values())):
            os.close(fd)

    def _reap_ended(self) -> None:
        while self.running:
            # Look at an ended child before reaping it, so that its process group cannot be another's
            # yet: whatever it started and left behind goes with it, as when Lambda ends a sandbox.
            try:
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if ended is None or ended.si_pid == 0:
                return
            pid = ended.si_pid
            if pid in self.running:
                _kill_group(pid)
            _, status = os.waitpid(pid, 0)
            if pid in self.running:
                _, status_fd = self.running.pop(pid)
                _report(status_fd, {"exit": os.waitstatus_to_exitcode(status)})
                os.close(status_fd)

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, (deadline, status_fd) in list(self.running.items()):
            if deadline <= now:
                _kill_group(pid)
                os.waitpid(pid, 0)
                del self.running[pid]
                _report(status_fd, {"timeout": True})
                os.close(status_fd)


def run_forked_child(fds: ChildFds) -> NoReturn:
    """A forked child of the zygote: one run of the function."""
    os.dup2(fds.stdout, 1)
    os.dup2(fds.stderr, 2)
    os.close(fds.stdout)
    os.close(fds.stderr)
    with os.fdopen(fds.request, "rb") as stream:
        os._exit(run_request(stream))


def run_request(stream: BinaryIO) -> int:
    """One run of the function as `stream` asks, with exactly the environment it gives; the exit code."""
    request = json.loads(stream.read())
    # This process is the function's execution environment: its botocore session reads
    # AWS_EXECUTION_ENV, the credentials and the endpoint from here, as on Lambda. (A fresh
    # interpreter started with that environment may have added to it: LC_CTYPE, coercing a C locale.)
    os.environ.clear()
    os.environ.update(request["environment"])
    return run_handler(request["folder"], request["handler"], request["marker"])


def zygote(channel_fd: int) -> None:
    channel = socket.socket(fileno=channel_fd)
    with contextlib.suppress(Exception):  # a zygote without boto3 warmed still runs functions
        warm()
    gc.collect()
    gc.freeze()  # keep the shared pages shared in the children
    child = Zygote(channel).serve()
    if child is not None:
        run_forked_child(child)


def every_cpu() -> None:
    """Not only the CPU the auditor keeps to (auditor/common/process.py): the function's runs have their own."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def main(argv: list[str]) -> None:
    every_cpu()
    match argv:
        case ["zygote", channel_fd]:
            zygote(int(channel_fd))
        case ["run"]:
            os._exit(run_request(sys.stdin.buffer))
        case _:
            sys.exit(f"usage: sandbox.py zygote CHANNEL_FD | run (not {argv})")


if __name__ == "__main__":
    main(sys.argv[1:])
