"""Run the lab's function and judge its answer against the proof of lab.md.

Two ways to run it: the Lambda Invoke API (real AWS), or a local stand-in for the Lambda Python
runtime (for emulators that cannot run code) that runs the *deployed* code in a process of its own
with the execution role's credentials and `AWS_EXECUTION_ENV` set as Lambda sets it (a child forked
from a pre-started Python that has imported boto3 already; see "pre-forked runs").
"""

from __future__ import annotations

import atexit
import contextlib
import io
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
import urllib.request
import zipfile
from dataclasses import dataclass
from typing import Any

import structlog
from botocore.exceptions import ClientError

from auditor.accounts import AccountSessions
from auditor.actual import ActualFunction
from auditor.config import AccountAccess
from auditor.errors import is_not_found
from auditor.model import InvokeResult
from auditor.package import code_sha256, packaged
from auditor.spec import ExpectedLab

log = structlog.get_logger()

MAX_ANSWER_BYTES = 256 * 1024
_DETAIL_LIMIT = 300
_RESULT_MARKER = "\x1elab-auditor-result\x1e"


# ------------------------------------------------------------------------------------- judging (pure)


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "…"


def judge_answer(raw: bytes | str, expected: ExpectedLab, duration_ms: int = 0) -> InvokeResult:
    """Pass only on the proof: the destination account answered and its marker bucket is listed."""

    def result(ok: bool, cause: str, detail: str, answer: Any = None) -> InvokeResult:
        return InvokeResult(ok, cause, _clip(detail), duration_ms, answer)

    if len(raw) > MAX_ANSWER_BYTES:
        return result(False, "bad_answer", f"the answer is {len(raw)} bytes, more than {MAX_ANSWER_BYTES}")
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting deep enough to exhaust the stack
        return result(False, "bad_answer", "the function's answer is not JSON")
    if not isinstance(answer, dict):
        return result(False, "bad_answer", f"the function answered a {type(answer).__name__}, not an object")
    if answer.get("ok") is False:
        return _judge_failure(answer, result)
    return _judge_listing(answer, expected, result)


def _judge_failure(answer: dict[str, Any], result: Any) -> InvokeResult:
    stage, code, message = (
        str(answer.get("stage", "")),
        str(answer.get("error_code", "")),
        str(answer.get("error", "")),
    )
    cause = {"assume_role": "assume_denied", "list_buckets": "listing_denied"}.get(stage, "function_error")
    return result(False, cause, f"{stage}: {code}: {message}".strip(": "))


def _judge_listing(answer: dict[str, Any], expected: ExpectedLab, result: Any) -> InvokeResult:
    account = answer.get("destination_account")
    buckets = answer.get("buckets")
    if not isinstance(buckets, list) or not all(isinstance(b, str) for b in buckets):
        return result(False, "bad_answer", "the answer has no list of bucket names")
    summary = {"destination_account": str(account), "buckets": len(buckets)}
    if account != expected.destination_account:
        return result(
            False,
            "wrong_account",
            f"listed the buckets of account {account}, not of the destination {expected.destination_account}",
            summary,
        )
    if expected.marker_bucket.name not in buckets:
        return result(
            False,
            "marker_missing",
            f"the listing lacks the marker bucket {expected.marker_bucket.name}",
            summary,
        )
    return result(True, "ok", f"listed {len(buckets)} buckets of {account}, marker included", summary)


# ------------------------------------------------------------------------------------- Invoke API


def invoke_lambda(sessions: AccountSessions, origin: AccountAccess, expected: ExpectedLab) -> InvokeResult:
    # A retried Invoke runs the function twice, so no automatic retries; and the read timeout must
    # outlast the function's own timeout.
    client = sessions.client(
        origin,
        "lambda",
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=expected.function.timeout_seconds + 10,
    )
    started = time.monotonic()
    try:
        response = client.invoke(FunctionName=expected.function.name, InvocationType="RequestResponse")
    except ClientError as error:
        if is_not_found(error):
            return InvokeResult(False, "function_missing", "the function does not exist")
        raise
    payload = response["Payload"].read(MAX_ANSWER_BYTES + 1)
    duration = int((time.monotonic() - started) * 1000)
    if response.get("FunctionError"):
        return InvokeResult(False, "function_error", _clip(payload.decode("utf-8", "replace")), duration)
    return judge_answer(payload, expected, duration)


# ------------------------------------------------------------------------------------- local stand-in


class CodeUnavailable(Exception):
    pass


def deployed_code(function: ActualFunction) -> bytes:
    """The deployed zip: the packaged lambda_src when the digests say so, else fetched from Lambda.

    Emulators give no downloadable location. A zip whose SHA-256 equals the deployed CodeSha256 *is*
    the deployed code, so the packaged lambda_src is used when the digests match, without a download
    (an emulator's location points at a real AWS host that it never served the code from).
    """
    archive, digest = packaged()
    if digest == function.code_sha256:
        return archive
    if function.code_location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(function.code_location, timeout=10) as response:
                downloaded: bytes = response.read(50 * 1024 * 1024)
            if code_sha256(downloaded) == function.code_sha256:
                return downloaded
        except OSError:
            pass
    raise CodeUnavailable(
        f"cannot get the deployed code (CodeSha256 {function.code_sha256[:12]}… is not the packaged lambda_src)"
    )


_RUNNER = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
module_name, function_name = sys.argv[2].rsplit(".", 1)
try:
    answer = getattr(importlib.import_module(module_name), function_name)({}, None)
    text = json.dumps(answer)
except Exception as error:
    text = json.dumps({"ok": False, "stage": "unhandled", "error_code": type(error).__name__, "error": str(error)})
sys.stdout.write(sys.argv[3] + text)
"""


def invoke_local(
    sessions: AccountSessions,
    origin: AccountAccess,
    expected: ExpectedLab,
    function: ActualFunction,
    endpoint_url: str | None,
) -> InvokeResult:
    if not function.exists:
        return InvokeResult(False, "function_missing", "the function does not exist")
    try:
        archive = deployed_code(function)
    except CodeUnavailable as error:
        return InvokeResult(False, "code_unavailable", str(error))
    try:
        environment = _runtime_environment(sessions, origin, function, expected, endpoint_url)
    except ClientError as error:
        return InvokeResult(
            False, "execution_role", f"cannot assume the execution role {function.role}: {error}"
        )
    return _run_in_subprocess(archive, function, environment, expected)


def _base_environment() -> dict[str, str]:
    """The auditor's environment without its own AWS credentials and settings."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "AUDITOR_"))}


def _runtime_environment(
    sessions: AccountSessions,
    origin: AccountAccess,
    function: ActualFunction,
    expected: ExpectedLab,
    endpoint_url: str | None,
) -> dict[str, str]:
    credentials = sessions.client(origin, "sts").assume_role(
        RoleArn=function.role, RoleSessionName=function.name[:64], DurationSeconds=900
    )["Credentials"]
    version = function.runtime.removeprefix("python") or "3.12"
    environment = _base_environment()
    environment.update(function.environment)
    environment.update(
        {
            # botocore puts exec-env/<this> into the User-Agent, which the lab's condition checks.
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_REGION": expected.region,
            "AWS_DEFAULT_REGION": expected.region,
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        }
    )
    if endpoint_url:
        environment["AWS_ENDPOINT_URL"] = endpoint_url
    return environment


@dataclass(frozen=True)
class _Completed:
    """How a run of the function ended: its exit code (None: killed at its timeout) and its output."""

    returncode: int | None
    stdout: bytes
    stderr: bytes


def _run_in_subprocess(
    archive: bytes, function: ActualFunction, environment: dict[str, str], expected: ExpectedLab
) -> InvokeResult:
    """Run the handler in a process of its own, with exactly `environment`, and judge its answer.

    Each run is a fresh child: forked from the pre-started runtime (below) when possible, else a new
    interpreter. Nothing of one run (its credentials, environment, imported modules) reaches another.
    """
    timeout = max(1, function.timeout or expected.function.timeout_seconds)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lab-auditor-invoke-") as folder:
        archive_file = zipfile.ZipFile(io.BytesIO(archive))
        archive_file.extractall(folder)
        completed = None
        if PREFORKED and not _shadows_the_runtime(archive_file.namelist()):
            completed = _run_forked(folder, function.handler, environment, timeout)
        if completed is None:
            completed = _run_fresh(folder, function.handler, environment, timeout)
    if completed.returncode is None:
        return InvokeResult(False, "timeout", f"no answer within {function.timeout} s")
    duration = int((time.monotonic() - started) * 1000)
    stdout = completed.stdout.decode("utf-8", "replace")
    if completed.returncode != 0 or _RESULT_MARKER not in stdout:
        tail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return InvokeResult(False, "function_error", _clip(tail[0]), duration)
    return judge_answer(stdout.split(_RESULT_MARKER, 1)[1], expected, duration)


def _run_fresh(folder: str, handler: str, environment: dict[str, str], timeout: float) -> _Completed:
    """A new interpreter for this run: simple, but it imports boto3 anew every time (~0.4 s of CPU)."""
    try:
        completed = subprocess.run(
            [sys.executable, "-I", "-c", _RUNNER, folder, handler, _RESULT_MARKER],
            env=environment,
            capture_output=True,
            timeout=timeout,
            cwd=folder,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _Completed(None, b"", b"")
    return _Completed(completed.returncode, completed.stdout, completed.stderr)


# ------------------------------------------------------------------------------------- pre-forked runs
#
# Starting Python and importing boto3 costs far more than the function itself. So one "zygote" Python
# is started once, with the auditor's environment minus every AWS_* and AUDITOR_* variable; it imports
# boto3 and exercises botocore once (no session survives), then forks one child per invoke. The run's
# environment, credentials included, goes straight from the auditor to that child through a pipe that
# only the child reads: the zygote never holds a lab's secrets, so no later child can find them in the
# memory it inherits. The child replaces its environment before the handler runs, so the handler's
# botocore session reads AWS_EXECUTION_ENV, the credentials and the endpoint from it, as on Lambda.
# The zygote kills a child (and anything it started) at its timeout and reports how each one ended.

# False: always a fresh interpreter per invoke (the benchmarks compare both).
PREFORKED = True

# Packages the zygote has imported (and the standard library): a function that bundles its own copy of
# one would get the zygote's, so such a function runs in a fresh interpreter instead.
_PRELOADED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})
_START_TIMEOUT = 60.0
_REPORT_GRACE = 30.0

# The program comes on standard input, so that `ps` shows one short line, not the whole of it.
_BOOTSTRAP = "import sys; exec(compile(sys.stdin.read(), '<lab-auditor local runtime>', 'exec'))"
_ZYGOTE = r"""
import gc, importlib, json, os, selectors, signal, socket, sys, time, traceback

os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the program has been read; runs get no input


def warm():
    # Sessions share one data loader per data path, as the auditor's own sessions do: the service
    # models are parsed once, here, not in every child. Then build an STS and an S3 client and make one
    # call each against canned answers, so that every module botocore imports lazily is loaded once,
    # here too. That session is thrown away; each child's handler makes its own.
    import functools

    import boto3
    import botocore.loaders
    import botocore.session
    from botocore.awsrequest import AWSResponse

    botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)

    class Raw:
        def __init__(self, body):
            self.body = body

        def stream(self, **_):
            yield self.body

    bodies = {
        "sts": b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        b"<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>B</SecretAccessKey>"
        b"<SessionToken>C</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>"
        b"<AssumedRoleUser><Arn>arn:aws:sts::111111111111:assumed-role/r/s</Arn>"
        b"<AssumedRoleId>AROAWARM:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>",
        "s3": b"<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>",
    }

    def answer(request, event_name, **_):
        service = "sts" if ".sts." in event_name else "s3"
        return AWSResponse(request.url, 200, {}, Raw(bodies[service]))

    session = boto3.session.Session("warm", "warm", "warm", region_name="us-east-1")
    session.events.register("before-send", answer)
    for service, call in (("sts", lambda c: c.assume_role(RoleArn="arn:aws:iam::111111111111:role/r",
                                                          RoleSessionName="warm")),
                          ("s3", lambda c: c.list_buckets())):
        try:
            call(session.client(service, endpoint_url="http://127.0.0.1:9"))
        except Exception:
            pass


def report(fd, outcome):
    try:
        os.write(fd, json.dumps(outcome).encode() + b"\n")
    except OSError:
        pass


def serve(channel):
    # Returns None when the auditor goes away; in a forked child, that child's (request, stdout, stderr).
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_write)
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    running = {}  # pid -> (deadline, status fd)
    channel.send(b"ready")
    while True:
        deadlines = [deadline for deadline, _ in running.values()]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        for key, _ in selector.select(wait):
            if key.fileobj == wake_read:
                try:
                    while os.read(wake_read, 512):
                        pass
                except BlockingIOError:
                    pass
                continue
            message, fds, _, _ = socket.recv_fds(channel, 4096, 4)
            if not message:
                for pid in running:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return None
            if len(fds) != 4:
                for fd in fds:
                    os.close(fd)
                continue
            request_fd, stdout_fd, stderr_fd, status_fd = fds
            timeout = float(json.loads(message)["timeout"])
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                selector.close()
                channel.close()
                for fd in (wake_read, wake_write, status_fd, *(fd for _, fd in running.values())):
                    os.close(fd)
                os.setpgid(0, 0)
                return request_fd, stdout_fd, stderr_fd
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass
            for fd in (request_fd, stdout_fd, stderr_fd):
                os.close(fd)
            report(status_fd, {"pid": pid})
            running[pid] = (time.monotonic() + timeout, status_fd)
        while running:
            # Look at an ended child before reaping it, so that its process group cannot be another's
            # yet: whatever it started and left behind goes with it, as when Lambda ends a sandbox.
            try:
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if ended is None or ended.si_pid == 0:
                break
            pid = ended.si_pid
            if pid in running:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            _, status = os.waitpid(pid, 0)
            if pid in running:
                _, status_fd = running.pop(pid)
                report(status_fd, {"exit": os.waitstatus_to_exitcode(status)})
                os.close(status_fd)
        now = time.monotonic()
        for pid, (deadline, status_fd) in list(running.items()):
            if deadline <= now:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                os.waitpid(pid, 0)
                del running[pid]
                report(status_fd, {"timeout": True})
                os.close(status_fd)


channel = socket.socket(fileno=int(sys.argv[1]))
try:
    warm()
except Exception:
    pass
gc.collect()
gc.freeze()  # keep the shared pages shared in the children
child = serve(channel)
if child is None:
    sys.exit(0)

# ---- a forked child: one run of the function. It ends as a Lambda invocation does, when the handler
# returns: output flushed, then gone (no interpreter teardown, which would only copy shared pages).
request_fd, stdout_fd, stderr_fd = child
os.dup2(stdout_fd, 1)
os.dup2(stderr_fd, 2)
os.close(stdout_fd)
os.close(stderr_fd)
with os.fdopen(request_fd, "rb") as stream:
    request = json.loads(stream.read())
os.environ.clear()
os.environ.update(request["environment"])
os.chdir(request["folder"])
sys.path.insert(0, request["folder"])
marker, handler = request["marker"], request["handler"]
del request, child, stream
code = 0
try:
    module_name, function_name = handler.rsplit(".", 1)
    try:
        answer = getattr(importlib.import_module(module_name), function_name)({}, None)
        text = json.dumps(answer)
    except Exception as error:
        text = json.dumps(
            {"ok": False, "stage": "unhandled", "error_code": type(error).__name__, "error": str(error)}
        )
    sys.stdout.write(marker + text)
except SystemExit as exit_:  # as the interpreter would end on it
    if exit_.code is None or isinstance(exit_.code, int):
        code = exit_.code or 0
    else:
        print(exit_.code, file=sys.stderr)
        code = 1
except BaseException:
    traceback.print_exc()
    code = 1
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except Exception:
        code = code or 120
os._exit(code)
"""


class _ZygoteLost(Exception):
    """The pre-started runtime is gone or never came up; `started`: whether the run had begun."""

    def __init__(self, message: str, *, started: bool = False) -> None:
        super().__init__(message)
        self.started = started


class _Zygote:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOTSTRAP, str(theirs.fileno())],
                env=_base_environment(),
                pass_fds=[theirs.fileno()],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the auditor is not the runtime's to handle
            )
            assert self.process.stdin is not None
            with self.process.stdin:
                self.process.stdin.write(_ZYGOTE.encode())
        finally:
            theirs.close()
        self.channel = ours
        self.lock = threading.Lock()
        ours.settimeout(_START_TIMEOUT)
        try:
            ready = ours.recv(16)
        except OSError as error:
            self.close()
            raise _ZygoteLost(f"the pre-started runtime did not start: {error}") from None
        if ready != b"ready":
            self.close()
            raise _ZygoteLost("the pre-started runtime did not start")
        ours.settimeout(None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def run(self, folder: str, handler: str, environment: dict[str, str], timeout: float) -> _Completed:
        request = json.dumps(
            {"folder": folder, "handler": handler, "environment": environment, "marker": _RESULT_MARKER}
        ).encode()
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            request_read, request_write = os.pipe()
            status_read, status_write = os.pipe()
            try:
                try:
                    with self.lock:
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
                raise _ZygoteLost(f"the pre-started runtime is gone: {error}") from None
            finally:
                os.close(request_write)
            try:
                outcome = self._outcome(status_read, timeout + _REPORT_GRACE)
            finally:
                os.close(status_read)
            if outcome.get("timeout"):
                return _Completed(None, b"", b"")
            stdout.seek(0)
            stderr.seek(0)
            return _Completed(int(outcome["exit"]), stdout.read(), stderr.read())

    def _outcome(self, status_read: int, limit: float) -> dict[str, Any]:
        """The zygote's reports: the child's pid at once, then how it ended."""
        deadline = time.monotonic() + limit
        received = b""
        reports: dict[str, Any] = {}
        while "exit" not in reports and "timeout" not in reports:
            ready, _, _ = select.select([status_read], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(status_read, 4096) if ready else b""
            if not chunk:  # the zygote died, or stopped answering
                if "pid" in reports:
                    with contextlib.suppress(OSError):
                        os.killpg(int(reports["pid"]), signal.SIGKILL)
                self.close()
                raise _ZygoteLost("the pre-started runtime stopped answering", started=True)
            received += chunk
            *lines, received = received.split(b"\n")
            for line in lines:
                reports.update(json.loads(line))
        return reports

    def close(self) -> None:
        self.channel.close()  # the zygote sees the end of its channel, kills its children and exits
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_CAN_FORK = all(
    hasattr(module, name)
    for module, name in ((os, "fork"), (os, "waitid"), (socket, "send_fds"), (socket, "SOCK_SEQPACKET"))
)
_zygote_lock = threading.Lock()
_zygote: _Zygote | None = None
_zygote_failed = False


def _shadows_the_runtime(names: list[str]) -> bool:
    """Whether the package brings a module of the zygote's own (the zygote's copy would win)."""
    top_level = {name.split("/", 1)[0].removesuffix(".py") for name in names}
    return bool(top_level & (_PRELOADED | sys.stdlib_module_names))


def _the_zygote() -> _Zygote | None:
    global _zygote, _zygote_failed
    with _zygote_lock:
        if _zygote is None and not _zygote_failed and not _CAN_FORK:
            _zygote_failed = True
        if _zygote is None and not _zygote_failed:
            try:
                _zygote = _Zygote()
            except (_ZygoteLost, OSError) as error:
                _zygote_failed = True  # this platform or process cannot fork runs: fresh interpreters
                log.warning(
                    "local_runtime_unavailable", error=str(error), fallback="a fresh Python per invoke"
                )
        return _zygote


def _forget_zygote(zygote: _Zygote) -> None:
    global _zygote
    with _zygote_lock:
        if _zygote is zygote:
            _zygote = None


def _run_forked(folder: str, handler: str, environment: dict[str, str], timeout: float) -> _Completed | None:
    """A run in a child of the zygote; None when there is no zygote (the caller starts a fresh Python)."""
    zygote = _the_zygote()
    if zygote is None:
        return None
    try:
        return zygote.run(folder, handler, environment, timeout)
    except _ZygoteLost as lost:
        _forget_zygote(zygote)  # the next invoke starts a new one
        if not lost.started:
            return None  # the function never ran: a fresh interpreter runs it
        # It may have done its work: it is not run twice, but reported as the function's failure.
        return _Completed(1, b"", b"the local runtime stopped during the run")


def stop_local_runtime() -> None:
    """Stop the pre-started runtime (at exit; a later invoke starts a new one)."""
    global _zygote
    with _zygote_lock:
        zygote, _zygote = _zygote, None
    if zygote is not None:
        zygote.close()


def _after_fork_in_child() -> None:
    # A forked copy of the auditor must not share the parent's channel to the zygote.
    global _zygote, _zygote_lock
    _zygote, _zygote_lock = None, threading.Lock()


atexit.register(stop_local_runtime)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
