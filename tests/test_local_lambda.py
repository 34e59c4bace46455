"""The local Lambda stand-in's life cycle: each LocalLambda owns its zygote and its runs, stops them on
close, and shares nothing with another one, nor with a forked copy of its owner.

What it guarantees about a run (environment, timeout, what a function leaves running, hostile
functions) is tested through the invoke, both ways it runs: tests/test_invoke.py and
tests/test_bad_input.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from auditor.aws.local_lambda import Completed, LocalLambda, LocalLambdaClosed
from auditor.aws.local_lambda.stand_in import STOPPED_DURING_THE_RUN
from conftest import ALLOWED_CPUS, several_cpus

pytestmark = pytest.mark.slow  # zygotes and the runs they fork

HANDLER = "handler.lambda_handler"
PROOF = "def lambda_handler(event, context):\n    return {'ok': True, 'pid': __import__('os').getpid()}\n"
# Tells the test it is running (its pid, on the socket named in READY_SOCKET), then waits for its end.
SLEEPER = """
import os, socket, time

def lambda_handler(event, context):
    with socket.socket(socket.AF_UNIX) as ready:
        ready.connect("\\0" + os.environ["READY_SOCKET"])
        ready.sendall(str(os.getpid()).encode())
    time.sleep(60)
"""


def archive_of(handler: str, **more: str) -> bytes:
    """A function's package: handler.py, and more files by path."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, source in {"handler.py": handler, **more}.items():
            archive.writestr(path, source)
    return buffer.getvalue()


def answer(completed: Completed) -> object:
    assert completed.returncode == 0 and completed.answer is not None, completed
    return json.loads(completed.answer)


def gone(pid: int) -> bool:
    """Whether the process has ended (a zombie that no one has reaped yet has ended too)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return gone(pid)


@pytest.fixture
def ready_socket() -> Iterator[tuple[socket.socket, str]]:
    """A listening socket (abstract namespace) that a running SLEEPER reports to, and its name."""
    name = f"lab-auditor-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind("\0" + name)
        listener.listen()
        listener.settimeout(30)
        yield listener, name


def running_sleeper(
    stand_in: LocalLambda, pool: ThreadPoolExecutor, ready: tuple[socket.socket, str]
) -> tuple[Future[Completed], int]:
    """A run of SLEEPER under way in `pool`, and the pid of its process, once it is running."""
    listener, name = ready
    run = pool.submit(stand_in.run, archive_of(SLEEPER), HANDLER, {"READY_SOCKET": name}, 60)
    try:
        connection, _ = listener.accept()
    except TimeoutError:
        raise AssertionError(f"the sleeper never ran: {run.result(timeout=30)}") from None
    with connection:
        return run, int(connection.recv(64))


@pytest.mark.parametrize("preforked", [True, False], ids=["preforked", "fresh"])
def test_close_stops_the_zygote_and_every_run_under_way(
    preforked: bool, ready_socket: tuple[socket.socket, str]
) -> None:
    stand_in = LocalLambda(preforked=preforked)
    with ThreadPoolExecutor(1) as pool:
        run, function_pid = running_sleeper(stand_in, pool, ready_socket)
        zygote_pid = stand_in.zygote_pid
        assert (zygote_pid is not None) == preforked
        stand_in.close()
        completed = run.result(timeout=30)  # at once, not after the function's 60 s
    assert (completed.returncode, completed.stderr) == (1, STOPPED_DURING_THE_RUN)
    assert wait_until_gone(function_pid), "the run outlived close()"
    if zygote_pid is not None:
        assert gone(zygote_pid), "the zygote outlived close()"
    assert stand_in.zygote_pid is None


def test_a_closed_stand_in_refuses_to_run_and_closing_again_is_harmless() -> None:
    with LocalLambda() as stand_in:
        answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))
        zygote_pid = stand_in.zygote_pid
    assert stand_in.closed and zygote_pid is not None and gone(zygote_pid)
    with pytest.raises(LocalLambdaClosed, match="closed"):
        stand_in.run(archive_of(PROOF), HANDLER, {}, 10)
    with pytest.raises(LocalLambdaClosed):
        stand_in.start()
    stand_in.close()
    assert stand_in.zygote_pid is None


def test_a_stand_in_starts_its_zygote_at_the_first_run_only() -> None:
    with LocalLambda() as stand_in:
        assert stand_in.zygote_pid is None  # made, not used: nothing started
        answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))
        first = stand_in.zygote_pid
        answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))
        assert first is not None and stand_in.zygote_pid == first


def test_two_stand_ins_are_independent() -> None:
    with LocalLambda() as one, LocalLambda() as other:
        answer(one.run(archive_of(PROOF), HANDLER, {}, 10))
        answer(other.run(archive_of(PROOF), HANDLER, {}, 10))
        one_zygote, other_zygote = one.zygote_pid, other.zygote_pid
        assert one_zygote is not None and other_zygote is not None and one_zygote != other_zygote
        one.close()
        assert gone(one_zygote) and not gone(other_zygote)
        answer(other.run(archive_of(PROOF), HANDLER, {}, 10))
        assert other.zygote_pid == other_zygote


def test_a_lost_zygote_is_replaced() -> None:
    with LocalLambda() as stand_in:
        answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))
        lost = stand_in.zygote_pid
        assert lost is not None
        os.kill(lost, signal.SIGKILL)
        assert wait_until_gone(lost)
        answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))  # a fresh interpreter, this once
        answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))
        assert stand_in.zygote_pid not in (None, lost)


def test_runs_from_many_threads_share_one_zygote() -> None:
    with LocalLambda() as stand_in, ThreadPoolExecutor(8) as pool:
        runs = [pool.submit(stand_in.run, archive_of(PROOF), HANDLER, {}, 30) for _ in range(16)]
        pids = {answer(run.result(timeout=120))["pid"] for run in runs}  # type: ignore[index]
        zygote = stand_in.zygote_pid
        assert len(pids) == 16  # each run a process of its own
        assert zygote is not None and all(pid != zygote for pid in pids)


def test_a_forked_copy_of_the_owner_starts_its_own_zygote_and_leaves_the_owners_alone() -> None:
    with LocalLambda() as stand_in:
        answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))
        owners = stand_in.zygote_pid
        reading, writing = os.pipe()
        child = os.fork()
        if child == 0:  # the copy: run, report, close, and leave without running pytest's teardown
            report: dict[str, object] = {}
            try:
                report["answer"] = answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))
                report["zygote"] = stand_in.zygote_pid
                stand_in.close()
            except BaseException as error:
                report["error"] = repr(error)
            finally:
                os.write(writing, json.dumps(report).encode())
                os._exit(0)
        os.close(writing)
        with os.fdopen(reading, "rb") as pipe:
            report = json.loads(pipe.read() or b"{}")  # read to the end: the copy has exited
        os.waitpid(child, 0)
        assert "error" not in report and report.get("answer"), report
        assert report["zygote"] not in (None, owners)
        assert owners is not None and not gone(owners)  # the copy's close() did not stop the owner's
        answer(stand_in.run(archive_of(PROOF), HANDLER, {}, 10))
        assert stand_in.zygote_pid == owners


BOTOCORE_PROBE = "import botocore\ndef lambda_handler(event, context):\n    return botocore.WHOSE\n"


def test_a_function_that_brings_its_own_copy_of_a_preloaded_module_gets_its_own(
    preforked_local_lambda: LocalLambda,
) -> None:
    """The zygote has loaded botocore: a function that bundles its own runs in a fresh interpreter,
    where, as on Lambda, the package's copy comes first on the path."""
    package = archive_of(BOTOCORE_PROBE, **{"botocore/__init__.py": "WHOSE = 'the package'\n"})
    completed = preforked_local_lambda.run(package, HANDLER, {}, 10)
    assert answer(completed) == "the package"


MODULES_PROBE = """
import sys

def lambda_handler(event, context):
    return sorted({name.split(".")[0] for name in sys.modules} - sys.stdlib_module_names)
"""


def test_a_fresh_run_starts_with_nothing_of_boto3_or_the_auditor(fresh_local_lambda: LocalLambda) -> None:
    completed = fresh_local_lambda.run(archive_of(MODULES_PROBE), HANDLER, {}, 10)
    loaded = answer(completed)
    assert isinstance(loaded, list) and "handler" in loaded
    assert not {"boto3", "botocore", "auditor", "structlog"} & set(loaded), loaded


CPUS = "def lambda_handler(event, context):\n    return sorted(__import__('os').sched_getaffinity(0))\n"


@several_cpus
@pytest.mark.usefixtures("kept_to_one_cpu")
@pytest.mark.parametrize("preforked", [True, False], ids=["preforked", "fresh"])
def test_a_run_started_by_a_command_kept_to_one_cpu_has_every_cpu(preforked: bool) -> None:
    with LocalLambda(preforked=preforked) as stand_in:
        assert answer(stand_in.run(archive_of(CPUS), HANDLER, {}, 10)) == sorted(ALLOWED_CPUS)


# The guide's code, with its clients pointed at a port where nothing listens: each call fails at once.
CALLER = """
import boto3

def lambda_handler(event, context):
    sts = boto3.client("sts", endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    try:
        sts.assume_role(RoleArn="arn:aws:iam::account2:role/LambdaS3ListBuckets", RoleSessionName="guide")
    except Exception as error:
        print(error)
    return "done"
"""


@pytest.mark.parametrize("preforked", [True, False], ids=["preforked", "fresh"])
def test_a_run_records_the_aws_calls_the_handler_makes_without_credentials(preforked: bool) -> None:
    environment = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-of-the-run",
        "AWS_MAX_ATTEMPTS": "1",
    }
    with LocalLambda(preforked=preforked) as stand_in:
        completed = stand_in.run(archive_of(CALLER), HANDLER, environment, 30)
    assert answer(completed) == "done"
    assert len(completed.calls) == 1, completed.calls
    call = completed.calls[0]
    assert (call["service"], call["operation"]) == ("sts", "AssumeRole")
    assert call["role_arn"] == "arn:aws:iam::account2:role/LambdaS3ListBuckets"
    assert call["error"]  # it failed, and says how
    assert "secret-of-the-run" not in json.dumps(completed.calls)


def test_a_handler_that_prints_the_marker_does_not_forge_its_answer() -> None:
    forger = (
        "import sys\n"
        "def lambda_handler(event, context):\n"
        "    print('\\x1elab-auditor-result\\x1e{\"forged\": true}')\n"
        "    return {'real': True}\n"
    )
    with LocalLambda(preforked=False) as stand_in:
        completed = stand_in.run(archive_of(forger), HANDLER, {}, 30)
    assert answer(completed) == {"real": True}
    assert completed.calls == ()


def test_a_failed_call_is_recorded_by_its_code_or_its_kind_whatever_the_error_holds() -> None:
    from botocore.exceptions import ClientError, ConnectionClosedError

    from auditor.aws.local_lambda.sandbox import _error_code

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")
    assert _error_code(denied) == "AccessDenied"
    assert _error_code(ConnectionClosedError(endpoint_url="http://127.0.0.1:9")) == "ConnectionClosedError"
    unanswered = RuntimeError("reset")
    unanswered.response = None  # type: ignore[attr-defined]  # as some botocore errors carry it
    assert _error_code(unanswered) == "RuntimeError"
