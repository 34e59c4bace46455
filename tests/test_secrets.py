"""No secret leaves the auditor: not in a log line, a report, or a row of the database.

Two whole runs, through the real entry point, with recognisable fake credentials in the environment
and an external id in the configuration: the demo (the embedded emulator), and a failing audit of a
drifted class on a moto server, followed by status and every report format. Everything they print
or write is then searched for

- the exact fake values we set (secret key, session token, external id);
- the exact credentials the emulator issued for every role the run assumed (read off the STS
  answers by the proxy in front of the moto server);
- anything shaped like a secret next to a name such as SecretAccessKey or aws_session_token, and
  moto's session-token prefix (for the demo, whose emulator is inside the process).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auditor.app.context import open_context
from auditor.domain.config import LabConfig
from auditor.domain.spec import DESTINATION_ROLE
from bench.latency_proxy import LatencyProxy
from conftest import assumed, make_config, run_cli
from provisioner.provision import provision_targets

pytestmark = pytest.mark.slow  # the CLI in processes of its own, on a moto server

FAKE_ACCESS_KEY_ID = "AKIAFAKEFORTESTS0001"
FAKE_SECRET_KEY = "fakeSecretKey/ForLeakTests+0123456789ABCD"
FAKE_SESSION_TOKEN = "FakeSessionTokenForLeakTests//" + "Zm9vYmFy" * 12 + "=="
EXTERNAL_ID = "ext-id-never-log-me-7f3a9c"
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
    "AWS_SESSION_TOKEN": FAKE_SESSION_TOKEN,
}
MOTO_SESSION_TOKEN_PREFIX = "FQoGZXIvYXdz"
REPORTS = ("html", "md", "csv", "json")

# A secret-shaped value (16+ characters of base64) right after a name that says "secret" or "token".
SECRET_SHAPED = re.compile(
    r"(?i)(secret_?access_?key|session_?token|secret_?key|security_?token|aws_secret_access_key"
    r"|aws_session_token|x-amz-security-token)[\"'\]\s]*[:=,>]\s*[\"']?([A-Za-z0-9/+=]{16,})"
)


def everything_written(out: Path, *outputs: str) -> dict[str, str]:
    """Each output and each file under `out` as text; a SQLite database as a dump of every table."""
    texts = {f"output {number}": text for number, text in enumerate(outputs)}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".db":
            texts[str(path)] = dump_database(path)
        else:
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return texts


def dump_database(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert tables, f"{path} has no tables"
        lines = []
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                lines.append(f"{table}: {row!r}")
        return "\n".join(lines)
    finally:
        connection.close()


def assert_no_secrets(texts: dict[str, str], secrets: set[str]) -> None:
    leaks = []
    for where, text in texts.items():
        leaks += [f"{where}: {secret[:6]}…" for secret in secrets if secret in text]
        if MOTO_SESSION_TOKEN_PREFIX in text:
            leaks.append(f"{where}: a session token issued by the emulator")
        leaks += [f"{where}: {match.group(0)[:40]}…" for match in SECRET_SHAPED.finditer(text)]
    assert not leaks, leaks


def test_the_demo_writes_no_secret(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_cli("--log-level", "debug", "demo", "--out", str(out), env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    texts = everything_written(out, result.stdout, result.stderr)
    assert any(name.endswith(".db") for name in texts) and any(name.endswith(".html") for name in texts)
    assert_no_secrets(texts, {FAKE_SECRET_KEY, FAKE_SESSION_TOKEN})


class IssuedCredentials:
    """What the emulator answers to AssumeRole, and what the auditor asks it, seen on the wire."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: set[str] = set()
        self.requests: list[bytes] = []

    def __call__(self, method: str, path: str, request: bytes, response: bytes) -> None:
        found = re.findall(rb"<(?:SecretAccessKey|SessionToken)>([^<]+)</", response)
        with self.lock:
            self.requests.append(request)
            self.secrets.update(value.decode() for value in found)


def labs_with_external_id(*labs: LabConfig) -> str:
    def side(account_id: str) -> str:
        role = f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"
        return f'{{ account_id = "{account_id}", role_arn = "{role}", external_id = "{EXTERNAL_ID}" }}'

    return "".join(
        f'\n[[labs]]\nname = "{lab.name}"\n'
        f"origin = {side(lab.origin.account_id)}\ndestination = {side(lab.destination.account_id)}\n"
        for lab in labs
    )


@pytest.mark.server
def test_a_failing_audit_and_its_reports_write_no_secret(moto_server: str, tmp_path: Path) -> None:
    labs = (
        LabConfig("drifted", assumed("100000000071", EXTERNAL_ID), assumed("200000000071", EXTERNAL_ID)),
        LabConfig("broken", assumed("100000000072", EXTERNAL_ID), assumed("200000000072", EXTERNAL_ID)),
    )
    context = open_context(make_config(labs, endpoint_url=moto_server))
    assert all(outcome.ok for outcome in provision_targets(context, context.targets(), dry_run=False))
    iam = context.sessions.client(labs[0].destination, "iam")
    iam.update_assume_role_policy(
        RoleName=DESTINATION_ROLE,
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", '
        '"Action": "sts:AssumeRole"}]}',
    )
    context.sessions.client(labs[1].destination, "s3").delete_bucket(
        Bucket=context.targets()[1].expected.marker_bucket.name
    )

    issued = IssuedCredentials()
    out = tmp_path / "out"
    out.mkdir()
    # Everything the CLI sends goes through the proxy (no delay), which reads the credentials issued.
    with LatencyProxy(moto_server, delay=0.0, observe=issued) as proxy:
        unreachable = '\n[[labs]]\nname = "unreachable"\norigin = { account_id = "999999999999" }\n'
        config = out / "config.toml"
        config.write_text(
            f'[lab]\nregion = "us-east-1"\n[aws]\nendpoint_url = "{proxy.url}"\nmax_attempts = 2\n'
            f'[audit]\nconcurrency = 4\n[database]\nurl = "sqlite:///{out / "auditor.db"}"\n'
            f"{labs_with_external_id(*labs)}{unreachable}",
            encoding="utf-8",
        )
        common = ("--config", str(config))
        audit = run_cli("--log-level", "debug", "audit", "--format", "json", *common, env=ENVIRONMENT)
        # Then, at once (they only read what the audit recorded): status and every report.
        commands = [
            ("status", *common),
            *(("report", "--format", fmt, "--out", str(out / f"report.{fmt}"), *common) for fmt in REPORTS),
        ]
        with ThreadPoolExecutor(len(commands)) as pool:
            status, *reports = pool.map(lambda args: run_cli(*args, env=ENVIRONMENT), commands)
    assert audit.returncode == 1, audit.stderr[-3000:]  # the unreachable lab is an error
    assert '"verdict": "drifted"' in audit.stdout and '"verdict": "broken"' in audit.stdout
    assert '"cause": "ok"' in audit.stdout  # the function ran, with the execution role's credentials
    assert status.returncode == 0 and all(report.returncode == 0 for report in reports), status.stderr
    # The test is only as good as what it looked for: the external id went out, credentials came back.
    assert any(EXTERNAL_ID.encode() in request for request in issued.requests)
    assert len(issued.secrets) >= 6, "the emulator's credentials were not seen on the wire"

    outputs = [run.stdout + run.stderr for run in (audit, status, *reports)]
    texts = everything_written(out, *outputs)
    texts.pop(str(config))  # the configuration holds the external id by design
    assert {f"{out / 'auditor.db'}", f"{out / 'report.html'}", f"{out / 'report.json'}"} <= set(texts)
    assert_no_secrets(texts, {FAKE_SECRET_KEY, FAKE_SESSION_TOKEN, EXTERNAL_ID} | issued.secrets)


def test_the_search_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The detector itself: each kind of leak is caught, and ordinary output is not flagged."""
    (tmp_path / "x.log").write_text('{"event": "lab_audited", "lab": "pair-01", "requests": 12}')
    assert_no_secrets(everything_written(tmp_path, "audited 3 labs: conformant"), {FAKE_SECRET_KEY})
    for leak in (
        f"credentials: {FAKE_SECRET_KEY}",
        '{"SecretAccessKey": "abcdEFGH1234/+abcdEFGH1234"}',
        "aws_session_token = IQoJb3JpZ2luX2VjEBcaCXVzLWVhc3QtMSJHMEUCIQ",
        "<SessionToken>FQoGZXIvYXdzEBYaD" + "A" * 30 + "</SessionToken>",
    ):
        with pytest.raises(AssertionError):
            assert_no_secrets({"line": leak}, {FAKE_SECRET_KEY})
