"""The daemon's page: its routes through an HTTP client, and its auth rules on a real uvicorn.

Routes go through Starlette's TestClient (httpx) on a store of each kind; the auth rules and the
bind address through a real server on a free port, as a browser or a probe would reach it.
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
import jsonschema
import pytest
from starlette.testclient import TestClient

from auditor.app.health import Metrics
from auditor.domain.config import ConfigError, DaemonSettings
from auditor.domain.model import (
    Actor,
    Effect,
    Finding,
    InvokeResult,
    LabAudit,
    Severity,
    Side,
    Status,
    Trigger,
    Verdict,
    Witness,
)
from auditor.store import DatabaseUnavailable, Store
from auditor.web import ClassView, WebServer, create_app, page_token
from auditor.web.auth import authorized, is_loopback, presented_token
from auditor.web.server import bind
from conftest import make_config, pair, subject_of_role

TOKEN = "page-token-5f1c9a"
ROLE = "arn:aws:iam::200000000001:role/LambdaS3ListBuckets"
SCRIPT = "<script>alert(1)</script>"


def healthy() -> tuple[bool, str]:
    return True, "2026-11-29T10:00:00Z"


def opened_trust() -> Finding:
    return Finding(
        "trust_policy.widened",
        subject_of_role(ROLE),
        ROLE,
        Status.MODIFIED,
        Effect.WIDENED,
        Severity.CRITICAL,
        f"trust policy lets any principal assume the role {SCRIPT}",
        expected={"Statement": []},
        actual={"Statement": [{"Principal": "*"}]},
        witness=Witness(Side.ACTUAL, "sts:AssumeRole", ROLE, principal="arn:aws:iam::999999999999:root"),
        changed_by=Actor(
            "arn:aws:sts::200000000001:assumed-role/student/alice",
            "AssumedRole",
            "UpdateAssumeRolePolicy",
            datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC),
            "3f1c",
            source_ip="203.0.113.5",
        ),
    )


def lab_audit(number: int, verdict: Verdict, at: datetime, *findings: Finding, **fields: object) -> LabAudit:
    return LabAudit(
        lab=f"pair-0{number}",
        origin_account=f"1{number:011d}",
        destination_account=f"2{number:011d}",
        verdict=verdict,
        findings=findings,
        started_at=at,
        finished_at=at + timedelta(seconds=3),
        **fields,  # type: ignore[arg-type]
    )


def fill(store: Store, now: datetime) -> None:
    for number in (1, 2):
        store.ensure_lab(f"pair-0{number}", f"1{number:011d}", f"2{number:011d}", now + timedelta(hours=4))
    ok = InvokeResult(True, "ok", "listed 1 buckets", 300)
    store.record_audit(
        lab_audit(1, Verdict.CONFORMANT, now - timedelta(hours=2), invoke=ok), Trigger.SCHEDULE
    )
    store.record_audit(lab_audit(1, Verdict.DRIFTED, now - timedelta(hours=1), opened_trust()), Trigger.EVENT)
    store.record_audit(
        lab_audit(2, Verdict.CONFORMANT, now - timedelta(minutes=30), invoke=ok), Trigger.SCHEDULE
    )


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    fill(store, datetime.now(UTC))
    app = create_app(ClassView(lambda: store), healthy, Metrics(), token=None, refresh_seconds=2)
    with TestClient(app) as test_client:
        yield test_client


# ----------------------------------------------------------------------------------------- routes


def test_the_overview_lists_every_lab_with_its_latest_verdict_under_a_strict_policy(
    client: TestClient,
) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    html = response.text
    assert 'data-lab="pair-01"' in html and 'data-lab="pair-02"' in html
    assert 'href="/labs/pair-01"' in html
    assert '<span class="badge drifted">drifted</span>' in html
    assert '<script src="/static/live.js" defer></script>' in html
    assert 'data-refresh="2000"' in html
    assert "<script>alert" not in html


def test_the_overview_lists_the_labs_worst_first_with_the_rosters_student_names(store: Store) -> None:
    now = datetime.now(UTC)
    fill(store, now)
    store.ensure_lab("pair-03", "100000000003", "200000000003", now + timedelta(hours=4))
    store.record_audit(lab_audit(3, Verdict.BROKEN, now - timedelta(minutes=5)), Trigger.SCHEDULE)
    labs = tuple(
        replace(pair(number), info={"student_name": name, "student_email": f"{number}@example.edu"})
        for number, name in ((1, "Ada Lovelace"), (2, "Karen Spärck Jones"), (3, "Alan Turing"))
    )
    view = ClassView(lambda: store, config=make_config(labs))
    with TestClient(create_app(view, healthy, Metrics(), token=None)) as client:
        html = client.get("/").text
        lab_page = client.get("/labs/pair-02").text
    # broken, then drifted with a critical finding (both first, the critical one ahead), then conformant
    assert re.findall(r'<tr class="lab-row[^"]*" data-lab="([^"]+)"', html) == [
        "pair-01",
        "pair-03",
        "pair-02",
    ]
    assert '<div class="student">Karen Spärck Jones</div>' in html
    assert "<title>pair-02 (Karen Spärck Jones &lt;2@example.edu&gt;): conformant" in lab_page
    assert "<dt>Student</dt><dd>Karen Spärck Jones &lt;2@example.edu&gt;</dd>" in lab_page


def test_the_overview_answers_304_until_something_is_recorded(client: TestClient, store: Store) -> None:
    etag = client.get("/").headers["etag"]
    again = client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    store.record_audit(lab_audit(2, Verdict.BROKEN, datetime.now(UTC)), Trigger.SCHEDULE)
    changed = client.get("/", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert '<span class="badge broken">broken</span>' in changed.text


def test_a_lab_page_shows_its_findings_and_history_latest_first(client: TestClient) -> None:
    response = client.get("/labs/pair-01")
    assert response.status_code == 200
    html = response.text
    assert "trust policy lets any principal assume the role &lt;script&gt;" in html
    history = html[html.index("<h2>History</h2>") :]
    assert history.index('data-verdict="drifted"') < history.index('data-verdict="conformant"')
    assert 'href="/"' in html  # back to the overview


def test_a_lab_page_shows_who_changed_what(client: TestClient) -> None:
    html = client.get("/labs/pair-01").text
    assert (
        "admits arn:aws:iam::999999999999:root to sts:AssumeRole; "
        "changed by assumed-role/student/alice at 14:02 from 203.0.113.5"
    ) in html


def test_an_unknown_lab_is_404(client: TestClient) -> None:
    assert client.get("/labs/pair-99").status_code == 404


def test_api_labs_is_the_audit_json_of_every_labs_latest_audit(client: TestClient) -> None:
    response = client.get("/api/labs")
    assert response.status_code == 200
    document = response.json()
    assert document["schema"] == "auditor.audit/v1"
    assert [(lab["lab"], lab["verdict"]) for lab in document["labs"]] == [
        ("pair-01", "drifted"),
        ("pair-02", "conformant"),
    ]
    first = document["labs"][0]
    assert (first["origin_account"], first["destination_account"]) == ("100000000001", "200000000001")
    finding = first["findings"][0]
    assert (finding["check"], finding["severity"], finding["effect"]) == (
        "trust_policy",
        "critical",
        "widened",
    )
    assert finding["witness"]["principal"] == "arn:aws:iam::999999999999:root"
    assert finding["changed_by"]["source_ip"] == "203.0.113.5"
    assert document["labs"][1]["invoke"] == {"ok": True, "cause": "ok", "detail": "listed 1 buckets"}
    assert document["started_at"] <= document["finished_at"]
    jsonschema.validate(document, AUDIT_JSON_SHAPE)


AUDIT_JSON_SHAPE = {
    "type": "object",
    "required": ["schema", "started_at", "finished_at", "labs"],
    "properties": {
        "labs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["lab", "origin_account", "destination_account", "verdict", "findings"],
                "properties": {
                    "verdict": {"enum": ["conformant", "drifted", "broken", "error"]},
                    "findings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["check", "resource", "status", "effect", "severity", "message"],
                        },
                    },
                },
            },
        }
    },
}


def test_health_and_metrics_moved_onto_the_page(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {
        "healthy": True,
        "last_cycle": "2026-11-29T10:00:00Z",
    }
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "auditor_audits_total" in metrics.text


def test_an_unhealthy_daemon_answers_503() -> None:
    app = create_app(ClassView(unavailable), lambda: (False, "no cycle completed yet"), Metrics(), token=None)
    with TestClient(app) as test_client:
        assert test_client.get("/healthz").status_code == 503


def unavailable() -> Store:
    raise DatabaseUnavailable("the daemon is still waiting for its database")


def test_while_the_database_is_away_the_pages_answer_503_and_the_probes_still_work() -> None:
    app = create_app(ClassView(unavailable), healthy, Metrics(), token=None)
    with TestClient(app) as test_client:
        for path in ("/", "/labs/pair-01", "/api/labs"):
            response = test_client.get(path)
            assert response.status_code == 503 and response.headers["retry-after"] == "5", path
        assert test_client.get("/healthz").status_code == 200
        assert test_client.get("/metrics").status_code == 200


def test_the_script_is_served_from_the_page_itself(client: TestClient) -> None:
    response = client.get("/static/live.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "If-None-Match" in response.text and "eval(" not in response.text


# ---------------------------------------------------------------------------------- the auth rule


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "header,expected",
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer   {TOKEN}  ", True),
        (basic("anyone", TOKEN), True),
        (basic("", TOKEN), True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (basic(TOKEN, "wrong"), False),
        ("Basic not-base64!", False),
        (f"Token {TOKEN}", False),
        ("Bearer ", False),
        ("Bearer ünïcode", False),
        ("", False),
        (None, False),
    ],
)
def test_the_token_is_taken_as_bearer_or_as_the_basic_auth_password(
    header: str | None, expected: bool
) -> None:
    assert authorized(header, TOKEN) is expected


def test_a_basic_header_without_a_colon_presents_nothing() -> None:
    assert presented_token("Basic " + base64.b64encode(TOKEN.encode()).decode()) is None


@pytest.mark.parametrize(
    "host,loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.7", False),
        ("auditor.example", False),
    ],
)
def test_only_loopback_addresses_go_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_off_loopback_the_token_comes_from_the_named_variable() -> None:
    settings = DaemonSettings(health_host="0.0.0.0", web_token_env="PAGE_TOKEN")
    assert page_token(settings, "c.toml", {"PAGE_TOKEN": TOKEN}) == TOKEN
    assert page_token(DaemonSettings(), "c.toml", {}) is None
    assert page_token(DaemonSettings(health_host="0.0.0.0", health_port=0), "c.toml", {}) is None


@pytest.mark.parametrize(
    "settings,env,problem",
    [
        (DaemonSettings(health_host="0.0.0.0"), {}, "name the environment variable that holds its token"),
        (
            DaemonSettings(health_host="0.0.0.0", web_token_env="PAGE_TOKEN"),
            {},
            "PAGE_TOKEN is unset or empty",
        ),
        (
            DaemonSettings(health_host="::", web_token_env="PAGE_TOKEN"),
            {"PAGE_TOKEN": "  "},
            "PAGE_TOKEN is unset or empty",
        ),
    ],
)
def test_off_loopback_without_a_token_the_page_refuses_to_start(
    settings: DaemonSettings, env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        page_token(settings, "c.toml", env)
    assert (caught.value.file, caught.value.key) == ("c.toml", "daemon.web_token_env")
    assert problem in str(caught.value)


# ----------------------------------------------------------------------------- a real uvicorn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """The page on 0.0.0.0 with a token, over a SQLite store: the port it listens on."""
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    from auditor.store import upgrade

    upgrade(url)
    store = Store.from_url(url)
    fill(store, datetime.now(UTC))
    app = create_app(ClassView(lambda: store), healthy, Metrics(), token=TOKEN)
    server = WebServer(app, "0.0.0.0", 0, config_file="c.toml")
    server.start()
    yield server.port
    server.stop()
    store.close()


def test_bound_to_all_addresses_a_request_without_the_token_gets_401_and_one_with_it_200(served: int) -> None:
    base = f"http://127.0.0.1:{served}"
    for path in ("/", "/labs/pair-01", "/api/labs", "/static/live.js"):
        refused = httpx.get(base + path, timeout=10)
        assert refused.status_code == 401, path
        assert refused.headers.get_list("www-authenticate") == [
            'Basic realm="lab-auditor", charset="UTF-8"',
            'Bearer realm="lab-auditor"',
        ]
        assert "pair-01" not in refused.text
        assert (
            httpx.get(base + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code
            == 200
        )
        assert httpx.get(base + path, auth=("teacher", TOKEN), timeout=10).status_code == 200
        assert httpx.get(base + path, auth=("teacher", "guess"), timeout=10).status_code == 401


def test_bound_to_all_addresses_the_probes_stay_open(served: int) -> None:
    base = f"http://127.0.0.1:{served}"
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{base}/metrics", timeout=10).status_code == 200


def test_the_server_stops_cleanly_and_frees_its_port(tmp_path: Path) -> None:
    app = create_app(ClassView(unavailable), healthy, Metrics(), token=None)
    server = WebServer(app, "127.0.0.1", 0, config_file="c.toml")
    server.start()
    port = server.port
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    bind("127.0.0.1", port, "c.toml").close()  # free again


def test_a_port_already_taken_is_a_configuration_error_naming_health_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            bind("127.0.0.1", port, "c.toml")
    assert (caught.value.file, caught.value.key) == ("c.toml", "daemon.health_port")
    assert f"127.0.0.1:{port} is already in use" in str(caught.value)
