"""The daemon's live page in headless Chromium: a verdict recorded after the page loaded appears on it
without anyone reloading it, under the page's own Content-Security-Policy; so does a step a student
has newly done, on the class's progress board.

The page is served by a real uvicorn on the loopback; every other address is closed to the browser.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_report_browser import TIMEOUT, DevTools, chromium

from auditor.app.health import Metrics
from auditor.domain.config import load_config
from auditor.domain.model import LabAudit, Trigger, Verdict
from auditor.domain.rubric_file import shipped_rubric
from auditor.domain.steps import StepResult, StepStatus
from auditor.store import Store, upgrade
from auditor.web import ClassView, WebServer, create_app
from conftest import write_config

# Names resolve to nothing and every proxied request goes to a closed port; 127.0.0.1, where the
# page is, is reached directly (Chromium's implicit proxy bypass).
pytestmark = pytest.mark.slow  # a browser

LOOPBACK_ONLY = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9")

PAGE_STATE = """({
  badge: document.querySelector('tr.lab-row[data-lab="pair-02"] .badge')?.textContent,
  marker: window.__loadedOnce === true,
  scripts: document.scripts.length,
})"""


def lab_audit(number: int, verdict: Verdict, at: datetime) -> LabAudit:
    return LabAudit(
        f"pair-0{number}", f"1{number:011d}", f"2{number:011d}", verdict, started_at=at, finished_at=at
    )


@pytest.fixture
def live_page(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    store = Store.from_url(url)
    now = datetime.now(UTC)
    for number in (1, 2):
        store.ensure_lab(f"pair-0{number}", f"1{number:011d}", f"2{number:011d}", now + timedelta(hours=2))
        store.record_audit(
            lab_audit(number, Verdict.CONFORMANT, now - timedelta(minutes=5)), Trigger.SCHEDULE
        )
    app = create_app(ClassView(lambda: store), lambda: (True, ""), Metrics(), token=None, refresh_seconds=0.5)
    server = WebServer(app, "127.0.0.1", 0, config_file="test.toml")
    server.start()
    yield f"http://127.0.0.1:{server.port}/", store
    server.stop()
    store.close()


def evaluate(devtools: DevTools, session: str, expression: str) -> Any:
    return devtools.call("Runtime.evaluate", session, expression=expression, returnByValue=True)["result"][
        "value"
    ]


def test_a_new_verdict_appears_without_a_reload(live_page: tuple[str, Store], tmp_path: Path) -> None:
    chromium()
    page_url, store = live_page
    devtools = DevTools.launch(tmp_path / "profile", network=LOOPBACK_ONLY)
    try:
        target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
        session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Network", "Page", "Log", "Runtime"):
            devtools.call(f"{domain}.enable", session)
        devtools.call("Page.navigate", session, url=page_url)
        devtools.wait_for(
            lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session
        )
        # A mark on this very document: a reload (by hand or by the page) would wipe it.
        evaluate(devtools, session, "window.__loadedOnce = true")
        before = evaluate(devtools, session, PAGE_STATE)
        assert before == {"badge": "conformant", "marker": True, "scripts": 1}

        store.record_audit(lab_audit(2, Verdict.BROKEN, datetime.now(UTC)), Trigger.EVENT)

        deadline = time.monotonic() + TIMEOUT
        state = before
        while state["badge"] != "broken" and time.monotonic() < deadline:
            state = evaluate(devtools, session, PAGE_STATE)
        assert state == {"badge": "broken", "marker": True, "scripts": 1}
    finally:
        devtools.close()

    loads = [e for e in devtools.events if e["method"] == "Page.loadEventFired"]
    assert len(loads) == 1, "the page was reloaded"
    requests = [
        e["params"]["request"]["url"] for e in devtools.events if e["method"] == "Network.requestWillBeSent"
    ]
    # The page and its script, then the page again and again; the browser asks for a favicon of its own.
    assert set(requests) <= {page_url, page_url + "static/live.js", page_url + "favicon.ico"}, requests
    assert requests.count(page_url) >= 2, "the page never fetched itself again"
    refused = [e["params"]["entry"]["text"] for e in devtools.events if e["method"] == "Log.entryAdded"]
    assert not [text for text in refused if "Content Security Policy" in text], refused


CLASS_LABS = """
[[labs]]
name = "pair-01"
origin = { account_id = "100000000001" }
destination = { account_id = "200000000001" }
info = { student_name = "Ada Lovelace" }
"""
BOARD_STATE = """({
  status: document.querySelector('tr.student-row[data-lab="pair-01"] td[data-step="dest-role"]')?.dataset.status,
  marker: window.__loadedOnce === true,
})"""


def step_audit(at: datetime, done: bool) -> LabAudit:
    status = StepStatus.DONE if done else StepStatus.MISSING
    steps = tuple(
        StepResult(step.step, status if step.step == "dest-role" else StepStatus.MISSING)
        for step in shipped_rubric().steps
    )
    return LabAudit(
        "pair-01", "100000000001", "200000000001", Verdict.DRIFTED, started_at=at, finished_at=at, steps=steps
    )


def test_a_step_newly_done_appears_on_the_board_without_a_reload(tmp_path: Path) -> None:
    chromium()
    config = load_config(
        write_config(tmp_path, "", CLASS_LABS, extra='[class]\nbuilt_by = "students"\n'), env={}
    )
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    store = Store.from_url(url)
    now = datetime.now(UTC)
    store.ensure_lab("pair-01", "100000000001", "200000000001", now + timedelta(hours=2))
    store.record_audit(step_audit(now - timedelta(minutes=1), done=False), Trigger.SCHEDULE)
    view = ClassView(lambda: store, config=config)
    app = create_app(view, lambda: (True, ""), Metrics(), token=None, refresh_seconds=0.5)
    server = WebServer(app, "127.0.0.1", 0, config_file="test.toml")
    server.start()
    devtools = DevTools.launch(tmp_path / "profile", network=LOOPBACK_ONLY)
    try:
        target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
        session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime"):
            devtools.call(f"{domain}.enable", session)
        devtools.call("Page.navigate", session, url=f"http://127.0.0.1:{server.port}/")
        devtools.wait_for(
            lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session
        )
        evaluate(devtools, session, "window.__loadedOnce = true")
        assert evaluate(devtools, session, BOARD_STATE) == {"status": "missing", "marker": True}

        store.record_audit(step_audit(datetime.now(UTC), done=True), Trigger.EVENT)

        deadline = time.monotonic() + TIMEOUT
        state: dict[str, Any] = {}
        while state.get("status") != "done" and time.monotonic() < deadline:
            state = evaluate(devtools, session, BOARD_STATE)
        assert state == {"status": "done", "marker": True}
    finally:
        devtools.close()
        server.stop()
        store.close()
    assert len([e for e in devtools.events if e["method"] == "Page.loadEventFired"]) == 1, "reloaded"
