"""The HTML report from the browser's side: headless Chromium loads it with every network path blocked.

Chromium is Debian's `chromium` package. Without it these tests skip, unless AUDITOR_REQUIRE_BROWSER=1
(as in CI), where they fail. The screenshot is kept in artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from auditor.domain.model import (
    Effect,
    Finding,
    InvokeResult,
    LabAudit,
    Severity,
    Status,
    Subject,
    Trigger,
    Verdict,
)
from auditor.report import build_report, render_html
from auditor.store import Store, upgrade
from conftest import REPO, subject_of_role

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts"
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(2)>"
LABS = ("pair-01", "pair-02", "pair-03", "pair-04")
TIMEOUT = 20.0

pytestmark = pytest.mark.slow  # a browser
# Every way out is closed: names resolve to nothing, and any proxied request goes to a closed port.
NETWORK_BLOCKED = (
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if os.environ.get("AUDITOR_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def chromium_command(
    user_data_dir: Path, *flags: str, network: tuple[str, ...] = NETWORK_BLOCKED
) -> list[str]:
    return [
        str(chromium()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={user_data_dir}",
        *network,
        *flags,
    ]


# --------------------------------------------------------------------------------------- the report


def policy(condition_value: str | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::100000000002:root"},
        "Action": "sts:AssumeRole",
    }
    if condition_value is not None:
        statement["Condition"] = {"StringLike": {"aws:UserAgent": condition_value}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def trust_finding() -> Finding:
    return Finding(
        "trust_policy.widened",
        subject_of_role("arn:aws:iam::200000000002:role/LambdaS3ListBuckets"),
        "arn:aws:iam::200000000002:role/LambdaS3ListBuckets",
        Status.MODIFIED,
        Effect.WIDENED,
        Severity.CRITICAL,
        f"trust policy lets any principal assume the role {IMAGE}",
        expected=policy(),
        actual={
            **policy(SCRIPT),
            "Statement": [*policy(SCRIPT)["Statement"], {**policy()["Statement"][0], "Principal": "*"}],
        },
    )


FUNCTION_SUBJECT = Subject("function", "100000000003", "Lambda-Assume-Roles", "Lambda-Assume-Roles")


def missing_function() -> tuple[Finding, ...]:
    resource = "arn:aws:lambda:us-east-1:100000000003:function:Lambda-Assume-Roles"
    return (
        Finding(
            "resource.missing",
            FUNCTION_SUBJECT,
            resource,
            Status.MISSING,
            Effect.NARROWED,
            Severity.MEDIUM,
            "the function does not exist",
            breaks_lab=True,
        ),
        Finding(
            "invoke.failed",
            FUNCTION_SUBJECT,
            resource,
            Status.FAILED,
            Effect.NONE,
            Severity.HIGH,
            "the invoke check failed: function_missing",
            breaks_lab=True,
        ),
    )


def audit(
    lab: int, at: datetime, verdict: Verdict, findings: tuple[Finding, ...] = (), **fields: Any
) -> LabAudit:
    return LabAudit(
        lab=f"pair-0{lab}",
        origin_account=f"1{lab:011d}",
        destination_account=f"2{lab:011d}",
        verdict=verdict,
        findings=findings,
        started_at=at,
        finished_at=at + timedelta(seconds=4),
        **fields,
    )


def fill_class(store: Store, now: datetime) -> None:
    """Two days of hourly audits: one lab stays conformant, one drifts, one breaks, one is torn down."""
    start = now - timedelta(days=2)
    for lab in range(1, 5):
        store.ensure_lab(f"pair-0{lab}", f"1{lab:011d}", f"2{lab:011d}", now + timedelta(hours=6))
        store.record_provisioned(
            f"pair-0{lab}", [], reset=False, at=start - timedelta(minutes=5), expires_at=None
        )
    ok = InvokeResult(True, "ok", "listed 1 buckets, marker included", 412)
    for hour in range(48):
        at = start + timedelta(hours=hour)
        store.record_audit(audit(1, at, Verdict.CONFORMANT, invoke=ok), Trigger.SCHEDULE)
        drifted = hour >= 30
        store.record_audit(
            audit(
                2,
                at,
                Verdict.DRIFTED if drifted else Verdict.CONFORMANT,
                (trust_finding(),) if drifted else (),
                invoke=ok,
            ),
            Trigger.SCHEDULE,
        )
        if hour < 40:
            broken = 12 <= hour < 20 or hour >= 36
            findings = missing_function() if broken else ()
            invoke = (
                InvokeResult(False, "function_missing", f"ResourceNotFound {SCRIPT}", 80) if broken else ok
            )
            store.record_audit(
                audit(3, at, Verdict.BROKEN if broken else Verdict.CONFORMANT, findings, invoke=invoke),
                Trigger.SCHEDULE,
            )
        if hour < 24:
            store.record_audit(audit(4, at, Verdict.CONFORMANT, invoke=ok), Trigger.SCHEDULE)
    store.record_audit(
        audit(3, now - timedelta(minutes=3), Verdict.ERROR, error=f"AccessDenied: {SCRIPT}"), Trigger.MANUAL
    )
    store.mark_teardown_started("pair-04", "test", start + timedelta(hours=24, minutes=10))
    store.record_torn_down("pair-04", start + timedelta(hours=24, minutes=12))


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'auditor.db'}"
    upgrade(url)
    store = Store.from_url(url)
    now = datetime.now(UTC)
    fill_class(store, now)
    path = folder / "report.html"
    path.write_text(render_html(build_report(store, None, None, now)), encoding="utf-8")
    store.close()
    yield path


# ------------------------------------------------------------------------------------ the DOM, loaded


class DomParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.rows: list[str] = []
        self.scripts = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self._in_title = tag == "title"
        self.scripts += tag == "script"
        if tag == "tr" and "lab-row" in (values.get("class") or "").split():
            self.rows.append(values.get("data-lab") or "")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def test_the_loaded_page_has_its_title_and_one_overview_row_a_lab(report_file: Path, tmp_path: Path) -> None:
    command = chromium_command(tmp_path / "profile", "--dump-dom", report_file.as_uri())
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = DomParser()
    dom.feed(result.stdout)
    assert dom.title.startswith("Lab audit report")
    assert dom.rows == [
        "pair-02",
        "pair-03",
        "pair-01",
        "pair-04",
    ]  # worst first: critical, broken, ..., torn down
    assert dom.scripts == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.stdout


def test_a_screenshot_is_kept_as_an_artifact(report_file: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    flags = (
        "--hide-scrollbars",
        "--window-size=1400,2400",
        f"--screenshot={screenshot}",
        report_file.as_uri(),
    )
    result = subprocess.run(
        chromium_command(tmp_path / "profile", *flags),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a blank page is a few kilobytes


# ------------------------------------------------------------------------- no request left the machine


@dataclass
class DevTools:
    """The Chrome DevTools Protocol over --remote-debugging-pipe: the browser reads fd 3 and writes fd 4."""

    process: subprocess.Popen[bytes]
    to_browser: int
    messages: queue.Queue[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0

    @classmethod
    def launch(cls, user_data_dir: Path, network: tuple[str, ...] = NETWORK_BLOCKED) -> DevTools:
        command_read, command_write = os.pipe()
        reply_read, reply_write = os.pipe()

        def onto_fds_3_and_4() -> None:
            # Moved out of the way first, so that neither dup2 can clobber the other's source.
            high_read = fcntl.fcntl(command_read, fcntl.F_DUPFD, 10)
            high_write = fcntl.fcntl(reply_write, fcntl.F_DUPFD, 10)
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        process = subprocess.Popen(
            chromium_command(user_data_dir, "--remote-debugging-pipe", "about:blank", network=network),
            preexec_fn=onto_fds_3_and_4,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(command_read)
        os.close(reply_write)
        messages: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=_read_messages, args=(reply_read, messages), daemon=True).start()
        return cls(process, command_write, messages)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        reply = self.wait_for(lambda m: m.get("id") == self.next_id)
        assert "error" not in reply, reply
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait_for(self, wanted: Any, deadline: float | None = None) -> dict[str, Any]:
        deadline = deadline or time.monotonic() + TIMEOUT
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if "method" in message:
                self.events.append(message)
            if wanted(message):
                return message

    def close(self) -> None:
        with contextlib.suppress(AssertionError, queue.Empty, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self.to_browser)


def _read_messages(fd: int, messages: queue.Queue[dict[str, Any]]) -> None:
    buffer = b""
    with os.fdopen(fd, "rb", buffering=0) as stream:
        while chunk := stream.read(65536):
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            for raw in complete:
                messages.put(json.loads(raw))


@pytest.fixture
def devtools(tmp_path: Path) -> Iterator[DevTools]:
    chromium()
    browser = DevTools.launch(tmp_path / "profile")
    yield browser
    browser.close()


PAGE_FACTS = """({
  title: document.title,
  rows: document.querySelectorAll("tr.lab-row").length,
  sections: document.querySelectorAll("section.lab").length,
  scripts: document.scripts.length,
  strips: document.querySelectorAll("svg.strip rect").length,
  bars: document.querySelectorAll("svg.chart rect").length,
  printRules: [...document.styleSheets].flatMap(s => [...s.cssRules]).filter(r => r.media && r.media.mediaText.includes("print")).length,
  escapedText: document.body.innerText.includes("<script>alert(1)</script>"),
})"""


def test_no_request_leaves_the_machine_and_the_page_is_complete_anyway(
    report_file: Path, devtools: DevTools
) -> None:
    target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
    session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Network", "Page", "Log", "Runtime"):
        devtools.call(f"{domain}.enable", session)
    devtools.call("Page.setLifecycleEventsEnabled", session, enabled=True)
    loader = devtools.call("Page.navigate", session, url=report_file.as_uri())["loaderId"]
    devtools.wait_for(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
    facts = devtools.call("Runtime.evaluate", session, expression=PAGE_FACTS, returnByValue=True)["result"][
        "value"
    ]
    # Chromium's own "no request for 500 ms" after the load: a late fetch (a lazy image, a font) comes first.
    devtools.wait_for(
        lambda m: (
            m.get("method") == "Page.lifecycleEvent"
            and m["params"]["name"] == "networkIdle"
            and m["params"]["loaderId"] == loader
        )
    )

    requests = [
        e["params"]["request"]["url"] for e in devtools.events if e["method"] == "Network.requestWillBeSent"
    ]
    assert [url for url in requests if not url.startswith(("file:", "data:", "about:"))] == []
    assert requests == [report_file.as_uri()]
    assert [e for e in devtools.events if e["method"] == "Page.javascriptDialogOpening"] == []
    refused = [e["params"]["entry"]["text"] for e in devtools.events if e["method"] == "Log.entryAdded"]
    assert not [text for text in refused if "Content Security Policy" in text], refused
    assert facts["title"].startswith("Lab audit report")
    assert (facts["rows"], facts["sections"], facts["scripts"]) == (len(LABS), len(LABS), 0)
    assert facts["strips"] >= len(LABS) and facts["bars"] > 10 and facts["printRules"] >= 1
    assert facts["escapedText"], "the policy's <script> should read as text on the page"
