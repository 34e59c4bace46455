"""`auditor report`: a history made by real audits on a moto server, read back in every format.

The class: pair-01 conformant (with two older runs recorded directly, three days and two days ago, for
--since), pair-02 drifted (trust open to everyone), pair-03 broken (function deleted), pair-04 torn
down, pair-05 drifted behind a policy whose condition value is `<script>`; pair-06 and pair-07 only
in the store, recorded directly: an audit error and a finding holding markup.
"""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, event

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.app.recording import record_run
from auditor.cli.report import report_command
from auditor.domain.config import LabConfig
from auditor.domain.model import Check, Effect, Finding, LabAudit, Severity, Status, Subject, Trigger, Verdict
from auditor.domain.spec import DESTINATION_POLICY, DESTINATION_ROLE, FUNCTION
from auditor.report import (
    SCHEMA_PATH,
    ClassReport,
    build_report,
    render_csv,
    render_html,
    render_json,
    render_markdown,
)
from auditor.report.csv_report import safe_cell
from auditor.report.demo_hook import write_html_report
from auditor.report.diff import document_diff
from auditor.report.markdown_report import code, fenced, text
from auditor.report.model import DiffKind, RosterEntry
from auditor.report.text import span
from auditor.report.timeline import grid_for, summarise
from auditor.store import LabState, RunPoint, Store, upgrade
from conftest import labs_toml, make_config, pair, write_config
from provisioner.provision import provision_targets
from provisioner.teardown import teardown_targets

SCRIPT = "<script>alert(1)</script>"
ERROR_SCRIPT = '<script>alert("error")</script>'
MARKUP_MESSAGE = "student wrote <img src=x onerror=alert(7)> | into the policy"
CONFORMANT, DRIFTED, BROKEN, TORN_DOWN, SCRIPTED, ERRORED, MARKED = (f"pair-0{i}" for i in range(1, 8))


@dataclass(frozen=True)
class History:
    store: Store
    config: Path
    names: tuple[str, ...]
    old_runs_at: tuple[datetime, datetime]


# ------------------------------------------------------------------------------------------ the class


def open_trust_to_everyone(context: Context, lab: LabConfig) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    iam = context.sessions.client(lab.destination, "iam")
    iam.update_assume_role_policy(RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(document))


def delete_function(context: Context, lab: LabConfig) -> None:
    context.sessions.client(lab.origin, "lambda").delete_function(FunctionName=FUNCTION)


def script_in_a_condition(context: Context, lab: LabConfig) -> None:
    """IAM only takes alphanumeric Sids, but any string as a condition value."""
    statement = {
        "Sid": "S3ListAllMyBuckets",
        "Effect": "Allow",
        "Action": ["s3:ListAllMyBuckets"],
        "Resource": "*",
        "Condition": {"StringLike": {"aws:UserAgent": SCRIPT}},
    }
    iam = context.sessions.client(lab.destination, "iam")
    iam.put_role_policy(
        RoleName=DESTINATION_ROLE,
        PolicyName=DESTINATION_POLICY,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def recorded_directly(lab: LabConfig, at: datetime, verdict: Verdict, **fields: Any) -> LabAudit:
    return LabAudit(
        lab=lab.name,
        origin_account=lab.origin.account_id,
        destination_account=lab.destination.account_id,
        verdict=verdict,
        started_at=at,
        finished_at=at + timedelta(seconds=3),
        **fields,
    )


def markup_finding(lab: LabConfig) -> Finding:
    return Finding(
        "lambda_config.modified",
        Subject("function", lab.origin.account_id, FUNCTION, FUNCTION),
        f"arn:aws:lambda:us-east-1:{lab.origin.account_id}:function:{FUNCTION}",
        Status.MODIFIED,
        Effect.NONE,
        Severity.MEDIUM,
        MARKUP_MESSAGE,
        expected={"MemorySize": 128},
        actual={"MemorySize": SCRIPT},
    )


def record_old_runs(store: Store, lab: LabConfig, now: datetime) -> tuple[datetime, datetime]:
    three_days_ago, two_days_ago = now - timedelta(days=3), now - timedelta(days=2)
    store.record_audit(recorded_directly(lab, three_days_ago, Verdict.BROKEN), Trigger.SCHEDULE)
    store.record_audit(recorded_directly(lab, two_days_ago, Verdict.CONFORMANT), Trigger.SCHEDULE)
    return three_days_ago, two_days_ago  # recorded to the microsecond


def record_store_only_labs(store: Store, errored: LabConfig, marked: LabConfig, now: datetime) -> None:
    for lab in (errored, marked):
        store.ensure_lab(lab.name, lab.origin.account_id, lab.destination.account_id, None)
    store.record_audit(
        recorded_directly(errored, now, Verdict.ERROR, error=f"AccessDenied: {ERROR_SCRIPT}"), Trigger.MANUAL
    )
    store.record_audit(
        recorded_directly(marked, now, Verdict.DRIFTED, findings=(markup_finding(marked),)), Trigger.MANUAL
    )


def audit_round(context: Context, store: Store, names: list[str]) -> None:
    run = audit_targets(context, context.targets(names), invoke=True)
    record_run(store, run, Trigger.MANUAL)


def fake_credentials(env: pytest.MonkeyPatch) -> None:
    """conftest's autouse fixture sets them per test, after a module-scoped fixture like this one has run."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.setenv(name, "testing")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    env.setenv("AWS_CONFIG_FILE", "/dev/null")
    env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    env.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="module")
def history(moto_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """Provision five labs, audit, drift three, audit twice more, tear one down: a real history."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")).close()
    folder = tmp_path_factory.mktemp("report")
    store = new_store(folder)
    labs = tuple(pair(index) for index in range(1, 8))
    audited, store_only = labs[:5], labs[5:]  # the last two: recorded directly, never on AWS
    with pytest.MonkeyPatch.context() as env:
        fake_credentials(env)
        context = open_context(make_config(audited, endpoint_url=moto_server_url))
        now = datetime.now(UTC)
        outcomes = provision_targets(context, context.targets(), dry_run=False, store=store)
        assert all(outcome.ok for outcome in outcomes), outcomes
        old_runs_at = record_old_runs(store, labs[0], now)
        names = [lab.name for lab in audited]
        audit_round(context, store, names)
        open_trust_to_everyone(context, labs[1])
        delete_function(context, labs[2])
        script_in_a_condition(context, labs[4])
        audit_round(context, store, names)
        audit_round(context, store, names)
        assert all(
            o.ok for o in teardown_targets(context, context.targets([TORN_DOWN]), dry_run=False, store=store)
        )
        record_store_only_labs(store, store_only[0], store_only[1], datetime.now(UTC))
        context.close()
    config = write_config(
        folder, moto_server_url, labs_toml(*labs), database_url=f"sqlite:///{folder / 'auditor.db'}"
    )
    yield History(store, config, tuple(lab.name for lab in labs), old_runs_at)
    store.close()


def new_store(folder: Path) -> Store:
    url = f"sqlite:///{folder / 'auditor.db'}"
    upgrade(url)
    return Store.from_url(url)


def sheet(report: ClassReport) -> str:
    """The CSV sheet without its byte-order mark (which it must start with), as a spreadsheet reads it."""
    rendered = render_csv(report)
    assert rendered.startswith("\ufeff")
    return rendered.removeprefix("\ufeff")


def report_now(history: History, since: datetime | None = None, labs: list[str] | None = None) -> ClassReport:
    return build_report(history.store, labs, since, datetime.now(UTC))


def run_report(history: History, *args: str) -> Result:
    return CliRunner().invoke(
        report_command, ["--config", str(history.config), *args], catch_exceptions=False
    )


# ------------------------------------------------------------------------------------------ the model


def test_the_class_has_each_kind_of_lab(history: History) -> None:
    labs = {lab.name: lab for lab in report_now(history).labs}
    assert set(labs) == set(history.names)
    assert labs[CONFORMANT].verdict is Verdict.CONFORMANT
    assert labs[DRIFTED].verdict is Verdict.DRIFTED
    assert labs[BROKEN].verdict is Verdict.BROKEN
    assert labs[TORN_DOWN].state is LabState.TORN_DOWN
    assert labs[ERRORED].verdict is Verdict.ERROR
    assert labs[DRIFTED].severity_counts.critical >= 1


def test_the_report_reads_the_store_with_few_queries(history: History) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):
            statements.append(args[2])

    event.listen(Engine, "before_cursor_execute", count)
    try:
        report = report_now(history)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    # One read each for status, timelines and latest runs (a handful of statements), then one a lab.
    assert len(statements) <= 12 + len(report.labs), statements


# ------------------------------------------------------------------------------------------------ HTML


class PageParser(HTMLParser):
    """What the tests look at in a page: title, overview rows, classes, and every attribute naming a URL."""

    URL_ATTRIBUTES = frozenset({"src", "href", "xlink:href", "action", "srcset", "poster", "data"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.overview_rows: list[str] = []
        self.classes: set[str] = set()
        self.styles: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.append(tag)
        self._in.append(tag)
        self.urls += [value for name, value in values.items() if name in self.URL_ATTRIBUTES]
        self.classes.update(values.get("class", "").split())
        if tag == "tr" and "lab-row" in values.get("class", ""):
            self.overview_rows.append(values["data-lab"])

    def handle_endtag(self, tag: str) -> None:
        if tag in self._in:
            del self._in[len(self._in) - 1 - self._in[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "title":
            self.title += data
        if self._in and self._in[-1] == "style":
            self.styles.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def test_html_has_a_title_and_one_overview_row_a_lab_worst_first(history: History) -> None:
    page = parse(render_html(report_now(history)))
    assert page.title.startswith("Lab audit report")
    assert page.overview_rows == WORST_FIRST
    sections = re.findall(
        r'<section class="card lab[^"]*" id="lab-([^"]+)"', render_html(report_now(history))
    )
    assert sections == WORST_FIRST


def test_the_roster_puts_the_students_name_in_the_html_and_markdown_overviews(history: History) -> None:
    roster = {name: RosterEntry("", "", {"student_name": f"Student of {name}"}) for name in history.names}
    roster[DRIFTED] = RosterEntry("", "", {"student_name": "Karen Spärck Jones", "student_email": "k@x.edu"})
    report = replace(report_now(history), roster=roster)
    html = render_html(report)
    row = re.search(rf'<tr class="lab-row" data-lab="{DRIFTED}">(.*?)</tr>', html, flags=re.DOTALL)
    assert row is not None and '<div class="student">Karen Spärck Jones</div>' in row.group(1)
    assert "Karen Spärck Jones &lt;k@x.edu&gt;" in html  # the lab's section: name and address
    markdown = render_markdown(report)
    assert f"| {DRIFTED} | Karen Spärck Jones | " in markdown
    assert f"## {DRIFTED} (Karen Spärck Jones) — 🟠 drifted" in markdown


def test_html_colours_each_verdict_and_severity(history: History) -> None:
    page = parse(render_html(report_now(history)))
    assert {"badge", "conformant", "drifted", "broken", "error"} <= page.classes
    assert {"chip", "critical", "medium"} <= page.classes
    assert {"fill-conformant", "fill-drifted", "fill-broken"} <= page.classes  # strips and chart
    assert "strip" in page.classes and "chart" in page.classes


def test_html_is_self_contained(history: History) -> None:
    html = render_html(report_now(history))
    page = parse(html)
    assert "http://" not in html and "https://" not in html
    assert all(url.startswith("#") for url in page.urls), page.urls
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(page.tags)
    assert not any("@import" in style or "url(" in style for style in page.styles)
    assert "@media print" in "".join(page.styles)


def test_html_shows_the_policy_difference_not_two_blobs(history: History) -> None:
    lab = next(lab for lab in report_now(history).labs if lab.name == SCRIPTED)
    finding = next(item for item in lab.findings if item.finding.check == Check.INLINE_POLICY)
    assert finding.diff is not None and finding.diff.canonical_policy
    added = [row.actual for row in finding.diff.rows if row.kind is DiffKind.ADDED]
    assert any('"Condition"' in (line or "") for line in added)
    assert all(row.kind is DiffKind.SAME for row in finding.diff.rows if '"Effect"' in (row.expected or ""))
    assert 'class="added"' in render_html(report_now(history, labs=[SCRIPTED]))


def test_html_lists_life_cycle_events_and_the_invoke_result(history: History) -> None:
    html = render_html(report_now(history, labs=[TORN_DOWN, BROKEN]))
    assert "torn down" in html and "provisioned" in html
    assert "function_missing" in html


# ------------------------------------------------------------------------------------------- escaping


@pytest.mark.parametrize("lab", [SCRIPTED, ERRORED, MARKED])
def test_markup_from_aws_shows_as_text_in_html(history: History, lab: str) -> None:
    html = render_html(report_now(history, labs=[lab]))
    assert "&lt;script&gt;" in html
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert not parse(html).urls or all(url.startswith("#") for url in parse(html).urls)


def test_markup_from_aws_shows_as_text_in_markdown(history: History) -> None:
    markdown = render_markdown(report_now(history, labs=[ERRORED, MARKED, SCRIPTED]))
    assert "\\<script\\>" in markdown  # the error message, escaped
    assert "\\<img src=x onerror=alert\\(7\\)\\> \\| into the policy" in markdown
    outside_code_blocks = _outside_fences(markdown)
    assert all(outside_code_blocks[at - 1] == "\\" for at in _positions("<", outside_code_blocks))


def _positions(character: str, text: str) -> list[int]:
    return [at for at, found in enumerate(text) if found == character]


def _outside_fences(markdown: str) -> str:
    lines, inside = [], False
    for line in markdown.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
        elif not inside:
            lines.append(line)
    return "\n".join(lines)


def test_markup_from_aws_is_data_in_json(history: History) -> None:
    document = json.loads(render_json(report_now(history, labs=[ERRORED, SCRIPTED])))
    errored = next(lab for lab in document["labs"] if lab["lab"] == ERRORED)
    assert errored["latest_run"]["error"] == f"AccessDenied: {ERROR_SCRIPT}"


def test_csv_cells_that_start_a_formula_get_an_apostrophe() -> None:
    assert [safe_cell(cell) for cell in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "pair-01")] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\t=1",
        "pair-01",
    ]


def test_a_lab_named_like_a_formula_reaches_the_sheet_as_text(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.ensure_lab('=HYPERLINK("http://evil","x")', "111111111111", "222222222222", None)
    rows = list(csv.DictReader(io.StringIO(sheet(build_report(store, None, None, datetime.now(UTC))))))
    assert rows[0]["lab"] == '\'=HYPERLINK("http://evil","x")'


def test_markdown_text_escapes_table_pipes_and_markup() -> None:
    assert text("a|b") == "a\\|b"
    assert text("<b>*x*</b>") == "\\<b\\>\\*x\\*\\</b\\>"
    assert text("two\nlines") == "two lines"
    assert code("a`b") == "``a`b``"
    assert fenced("diff", ["x ``` y"])[0] == "````diff"


# -------------------------------------------------------------------------------------------- Markdown


# The class worst first: broken or critical (the most severe first), drifted, error, conformant, torn down.
WORST_FIRST = [DRIFTED, BROKEN, SCRIPTED, MARKED, ERRORED, CONFORMANT, TORN_DOWN]


def test_the_class_worst_first_is_broken_or_critical_drifted_error_conformant_then_torn_down(
    history: History,
) -> None:
    labs = report_now(history).worst_first()
    assert [lab.name for lab in labs] == WORST_FIRST, [(lab.name, lab.verdict, lab.urgency) for lab in labs]


def test_markdown_has_an_overview_row_a_lab_worst_first_and_the_findings(history: History) -> None:
    markdown = render_markdown(report_now(history))
    rows = [line for line in markdown.splitlines() if line.startswith("| pair-")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == WORST_FIRST
    sections = [line.split(" ")[1] for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == WORST_FIRST[:5]  # the conformant ones (the torn-down one too) are quiet
    assert f"## {DRIFTED} — 🟠 drifted" in markdown  # no roster: the lab's name alone
    assert "**critical** `trust_policy` modified (widened)" in markdown
    assert "```diff" in markdown


# ------------------------------------------------------------------------------------------------- CSV


def test_csv_is_a_grade_sheet_matching_the_store(history: History) -> None:
    rows = {row["lab"]: row for row in csv.DictReader(io.StringIO(sheet(report_now(history))))}
    statuses = {status.name: status for status in history.store.status()}
    latest = history.store.latest_runs()
    assert set(rows) == set(statuses)
    for name, row in rows.items():
        assert row["origin_account"] == statuses[name].origin
        assert row["destination_account"] == statuses[name].destination
        assert row["state"] == statuses[name].state.value
        assert row["latest_verdict"] == latest[name].verdict.value
        for severity in Severity:
            assert int(row[severity.value]) == sum(f.severity is severity for f in latest[name].findings)
        first = history.store.first_conformant_at(name)
        assert row["first_conformant_at"] == (iso(first) if first else "")
        share = history.store.conformant_share(name, None)
        shown = float(row["conformant_share"]) if row["conformant_share"] else None
        assert shown == pytest.approx(share, abs=1e-4)


def test_csv_counts_the_whole_history_by_default(history: History) -> None:
    rows = {row["lab"]: row for row in csv.DictReader(io.StringIO(sheet(report_now(history))))}
    assert rows[CONFORMANT]["first_conformant_at"] == iso(history.old_runs_at[1])
    assert rows[CONFORMANT]["audits"] == "5"
    assert float(rows[CONFORMANT]["conformant_share"]) == pytest.approx(4 / 5)


# ------------------------------------------------------------------------------------------------ JSON


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def test_json_follows_its_schema(history: History, schema: dict[str, Any]) -> None:
    document = json.loads(render_json(report_now(history)))
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    assert document["schema"] == "auditor.report/v1"


def test_a_lab_never_audited_shows_in_every_format(tmp_path: Path, schema: dict[str, Any]) -> None:
    store = new_store(tmp_path)
    store.ensure_lab("pair-01", "111111111111", "222222222222", None)
    report = build_report(store, None, None, datetime.now(UTC))
    assert parse(render_html(report)).overview_rows == ["pair-01"]
    assert "not audited" in render_markdown(report)
    jsonschema.validate(json.loads(render_json(report)), schema, cls=jsonschema.Draft202012Validator)
    assert next(csv.DictReader(io.StringIO(sheet(report))))["latest_verdict"] == ""


def test_json_of_an_empty_history_follows_its_schema(tmp_path: Path, schema: dict[str, Any]) -> None:
    document = json.loads(render_json(build_report(new_store(tmp_path), None, None, datetime.now(UTC))))
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    assert document["labs"] == [] and document["period"]["start"] is None


def test_json_matches_the_store(history: History) -> None:
    document = json.loads(render_json(report_now(history)))
    latest = history.store.latest_runs()
    timelines = history.store.runs_since(None)
    for lab in document["labs"]:
        name = lab["lab"]
        assert lab["verdict"] == latest[name].verdict.value
        assert lab["latest_run"]["run_id"] == latest[name].run_id
        assert len(lab["findings"]) == len(latest[name].findings)
        assert lab["audits"] == len(timelines[name]) == sum(cell["audits"] for cell in lab["timeline"])
        assert [entry["event"] for entry in lab["lifecycle"]] == [
            entry.event.value for entry in history.store.lifecycle(name)
        ]
    assert len(document["conformance"]) == len(document["labs"][0]["timeline"])


def test_json_class_conformance_leaves_torn_down_labs_out(history: History) -> None:
    document = json.loads(render_json(report_now(history)))
    last = document["conformance"][-1]
    audited = len(history.names) - 1  # all but the torn-down lab
    assert last["labs"] == audited
    assert last["conformant"] == 1 and last["share"] == pytest.approx(1 / audited)


# ---------------------------------------------------------------------------------------- --since, --lab


def test_since_limits_the_period(history: History) -> None:
    since = datetime.now(UTC) - timedelta(days=1)
    lab = next(lab for lab in report_now(history, since=since).labs if lab.name == CONFORMANT)
    assert lab.audits == 3 and lab.conformant_share == 1.0
    assert lab.first_conformant_at is not None and lab.first_conformant_at > since
    whole = next(lab for lab in report_now(history).labs if lab.name == CONFORMANT)
    assert whole.audits == 5 and whole.first_conformant_at == history.old_runs_at[1]


def test_since_through_the_cli(history: History) -> None:
    result = run_report(history, "--format", "json", "--since", "1d")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["period"]["since"] is not None
    conformant = next(lab for lab in document["labs"] if lab["lab"] == CONFORMANT)
    assert conformant["audits"] == 3


def test_lab_limits_the_labs(history: History) -> None:
    result = run_report(history, "--format", "csv", "--lab", DRIFTED, "--lab", BROKEN)
    assert result.exit_code == 0, result.output
    assert [row["lab"] for row in csv.DictReader(io.StringIO(result.stdout.removeprefix("\ufeff")))] == [
        DRIFTED,
        BROKEN,
    ]


def test_a_configured_lab_the_store_never_saw_is_named(history: History, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    never = pair(9)
    config.write_text(history.config.read_text() + labs_toml(never))
    result = CliRunner().invoke(report_command, ["--config", str(config), "--format", "json"])
    assert json.loads(result.stdout)["unrecorded_labs"] == [never.name]


# ------------------------------------------------------------------------------------------------- CLI


def test_html_goes_to_report_html_by_default(
    history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_report(history, "--format", "html")
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    assert parse((tmp_path / "report.html").read_text(encoding="utf-8")).title.startswith("Lab audit report")


@pytest.mark.parametrize("output_format", ["md", "csv", "json"])
def test_text_formats_go_to_standard_output_or_out(
    history: History, tmp_path: Path, output_format: str
) -> None:
    printed = run_report(history, "--format", output_format)
    assert printed.exit_code == 0 and DRIFTED in printed.output
    path = tmp_path / f"report.{output_format}"
    written = run_report(history, "--format", output_format, "--out", str(path))
    assert written.exit_code == 0 and str(path) in written.output
    assert DRIFTED in path.read_text(encoding="utf-8")


def test_html_goes_to_standard_output_with_out_dash(history: History) -> None:
    result = run_report(history, "--format", "html", "--out", "-")
    assert result.exit_code == 0 and parse(result.stdout).title.startswith("Lab audit report")


def test_the_demo_writes_the_whole_history_as_html(history: History, tmp_path: Path) -> None:
    path = write_html_report(history.store, tmp_path / "demo.html", datetime.now(UTC))
    assert sorted(parse(path.read_text(encoding="utf-8")).overview_rows) == sorted(history.names)


def test_bad_arguments_exit_2_with_a_message(history: History) -> None:
    assert run_report(history).exit_code == 2  # --format is required
    bad_since = run_report(history, "--format", "md", "--since", "yesterday")
    assert bad_since.exit_code == 2 and "--since" in bad_since.output
    unknown = run_report(history, "--format", "md", "--lab", "pair-99")
    assert unknown.exit_code == 2 and "pair-99" in unknown.output


def test_an_unwritable_out_path_exits_1(history: History, tmp_path: Path) -> None:
    result = run_report(history, "--format", "csv", "--out", str(tmp_path / "missing" / "x.csv"))
    assert result.exit_code == 1 and "cannot write" in result.output


def test_the_command_runs_inside_the_auditor_group(history: History) -> None:
    from auditor.cli.main import main

    result = CliRunner().invoke(main, ["report", "--config", str(history.config), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(io.StringIO(result.stdout.removeprefix("\ufeff"))))) == len(history.names)


def test_the_command_has_help_with_an_example() -> None:
    result = CliRunner().invoke(report_command, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--since" in result.output


# ------------------------------------------------------------------------------------------ pure parts


def test_equal_policies_show_no_changed_line() -> None:
    expected = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "A", "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
    }
    actual = {
        "Statement": [{"Effect": "Allow", "Action": ["S3:listallmybuckets"], "Resource": ["*"]}],
        "Version": "2012-10-17",
    }
    diff = document_diff(expected, actual)
    assert diff is not None and diff.canonical_policy and not diff.changed


def test_values_that_are_not_policies_are_compared_as_json() -> None:
    diff = document_diff({"MemorySize": 128}, {"MemorySize": 256})
    assert diff is not None and not diff.canonical_policy
    assert [(row.kind, row.expected, row.actual) for row in diff.rows if row.kind is not DiffKind.SAME] == [
        (DiffKind.CHANGED, '  "MemorySize": 128', '  "MemorySize": 256')
    ]


def test_a_missing_side_shows_as_removed_lines() -> None:
    diff = document_diff({"Version": "2012-10-17", "Statement": []}, None)
    assert diff is not None and diff.has_expected and not diff.has_actual
    assert {row.kind for row in diff.rows} == {DiffKind.REMOVED}
    assert document_diff(None, None) is None


def point(at: datetime, verdict: Verdict, run_id: int = 0) -> RunPoint:
    return RunPoint(run_id, at, verdict, Trigger.SCHEDULE)


def test_a_bucket_shows_its_worst_verdict_and_the_class_its_standing() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    grid = grid_for(start, start + timedelta(hours=3))
    assert grid.width == timedelta(minutes=5) and grid.start == start
    runs = [
        point(start, Verdict.CONFORMANT),
        point(start + timedelta(minutes=1), Verdict.BROKEN),
        point(start + timedelta(minutes=2), Verdict.DRIFTED),
    ]
    history = summarise(runs, grid)
    assert history.cells[0].verdict is Verdict.BROKEN and history.cells[0].audits == 3
    assert history.cells[1].verdict is None
    assert history.cells[0].standing is history.cells[-1].standing is Verdict.DRIFTED
    assert (history.audits, history.conformant_audits, history.first_conformant_at) == (3, 1, start)


def test_a_lab_torn_down_after_its_last_audit_leaves_the_class() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    grid = grid_for(start, start + timedelta(hours=1))
    history = summarise([point(start, Verdict.CONFORMANT)], grid, torn_down=[start + timedelta(minutes=30)])
    assert history.cells[0].standing is Verdict.CONFORMANT and history.cells[-1].standing is None


def test_durations_read_in_two_units() -> None:
    assert span(timedelta(days=3, hours=4, minutes=5)) == "3 d 4 h"
    assert span(timedelta(minutes=12)) == "12 min"
    assert span(timedelta(seconds=0)) == "0 s"
