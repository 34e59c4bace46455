"""Notifications: which transitions are announced, what a message says, and sending through Apprise.

The sending tests use Apprise's real `json://` plugin against a small HTTP receiver started here.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from receiver import running_receiver
from structlog.testing import capture_logs

from auditor.common.logs import configure_logging
from auditor.daemon.notify import (
    LabWatch,
    Message,
    Notifier,
    NotifyType,
    Standing,
    finding_lines,
    notify_type,
    open_watch,
    page_address,
    render_audit_message,
    students_of,
    transition,
)
from auditor.domain.config import DaemonSettings, NotifyEvent, NotifySettings
from auditor.domain.explain import actor_line, explanation, witness_line
from auditor.domain.model import (
    Actor,
    Effect,
    Finding,
    InvokeResult,
    LabAudit,
    Severity,
    Side,
    Status,
    Verdict,
    Witness,
)
from auditor.store import Store, upgrade
from conftest import make_config, pair, subject_of_role

SETTINGS = NotifySettings(urls=("json://127.0.0.1:9/x",))
ROLE = "arn:aws:iam::222222222222:role/LambdaS3ListBuckets"
WITNESS = Witness(Side.ACTUAL, "sts:AssumeRole", ROLE, principal="arn:aws:iam::999999999999:root")
ACTOR = Actor(
    arn="arn:aws:sts::222222222222:assumed-role/student/alice",
    type="AssumedRole",
    event_name="UpdateAssumeRolePolicy",
    event_time=datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC),
    event_id="3f1c",
    source_ip="203.0.113.5",
    user_agent="console.amazonaws.com",
)


def finding(severity: Severity, message: str = "something changed", **fields: object) -> Finding:
    return Finding(
        "trust_policy.widened",
        subject_of_role(ROLE),
        ROLE,
        Status.MODIFIED,
        Effect.WIDENED,
        severity,
        message,
        **fields,  # type: ignore[arg-type]
    )


def opened_trust() -> Finding:
    return finding(
        Severity.CRITICAL,
        "trust policy lets any principal assume the role",
        witness=WITNESS,
        changed_by=ACTOR,
    )


def lab_audit(verdict: Verdict, *findings: Finding, lab: str = "pair-07", **fields: object) -> LabAudit:
    return LabAudit(
        lab=lab,
        origin_account="100000000007",
        destination_account="200000000007",
        verdict=verdict,
        findings=findings,
        started_at=datetime(2026, 11, 29, 14, 5, 0, tzinfo=UTC),
        finished_at=datetime(2026, 11, 29, 14, 5, 3, tzinfo=UTC),
        **fields,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------------- one line each


def test_a_witness_and_an_actor_read_as_one_line() -> None:
    assert explanation(opened_trust()) == (
        "admits arn:aws:iam::999999999999:root to sts:AssumeRole; "
        "changed by assumed-role/student/alice at 14:02 from 203.0.113.5"
    )


def test_a_narrowed_witness_says_what_is_no_longer_allowed_and_under_which_context() -> None:
    narrowed = Witness(
        Side.EXPECTED,
        "s3:ListAllMyBuckets",
        "*",
        context={"aws:SourceAccount": "100000000007", "aws:UserAgent": ("a", "b")},
    )
    assert witness_line(narrowed) == (
        "no longer allows s3:ListAllMyBuckets on * when aws:SourceAccount=100000000007, aws:UserAgent=a|b"
    )


def test_an_actor_without_address_or_time_still_reads() -> None:
    root = replace(ACTOR, arn="arn:aws:iam::222222222222:root", event_time=None, source_ip="")
    assert actor_line(root) == "changed by the root user of 222222222222"


def test_a_finding_without_witness_or_actor_explains_nothing() -> None:
    assert explanation(finding(Severity.HIGH)) == ""


# ------------------------------------------------------------------------------------- transitions

C, D, B, E = Verdict.CONFORMANT, Verdict.DRIFTED, Verdict.BROKEN, Verdict.ERROR
CRIT, HIGH, LOW = Severity.CRITICAL, Severity.HIGH, Severity.LOW

TRANSITIONS = {
    "a first audit, conformant": (None, Standing(C), None),
    "a first audit, broken": (None, Standing(B, HIGH), NotifyEvent.BROKEN),
    "conformant to drifted": (Standing(C), Standing(D, CRIT), NotifyEvent.DRIFTED),
    "conformant to drifted below min_severity": (Standing(C), Standing(D, LOW), None),
    "a low drift grows to high": (Standing(D, LOW), Standing(D, HIGH), NotifyEvent.DRIFTED),
    "a high drift shrinks to low": (Standing(D, HIGH), Standing(D, LOW), None),
    "drifted to broken": (Standing(D, CRIT), Standing(B, HIGH), NotifyEvent.BROKEN),
    "broken to error": (Standing(B, HIGH), Standing(E), NotifyEvent.ERROR),
    "broken and broken again": (Standing(B, HIGH), Standing(B, CRIT), None),
    "drifted and drifted again": (Standing(D, CRIT), Standing(D, HIGH), None),
    "conformant again": (Standing(C), Standing(C), None),
    "broken to conformant": (Standing(B, HIGH), Standing(C), NotifyEvent.RECOVERED),
    "error to conformant": (Standing(E), Standing(C), NotifyEvent.RECOVERED),
    "a quiet drift to conformant": (Standing(D, LOW), Standing(C), None),
    "broken to drifted below min_severity": (Standing(B, HIGH), Standing(D, LOW), None),
}


@pytest.mark.parametrize("previous,current,expected", TRANSITIONS.values(), ids=TRANSITIONS.keys())
def test_one_event_per_transition_and_none_for_the_same_standing(
    previous: Standing | None, current: Standing, expected: NotifyEvent | None
) -> None:
    assert transition(previous, current, SETTINGS) is expected


def test_events_left_out_of_on_are_not_sent_nor_is_the_recovery_from_them() -> None:
    settings = replace(SETTINGS, on=frozenset({NotifyEvent.BROKEN, NotifyEvent.RECOVERED}))
    assert transition(Standing(C), Standing(D, CRIT), settings) is None
    assert transition(Standing(D, CRIT), Standing(C), settings) is None
    assert transition(Standing(B, HIGH), Standing(C), settings) is NotifyEvent.RECOVERED


def test_min_severity_sets_which_drift_is_worth_a_message() -> None:
    settings = replace(SETTINGS, min_severity=Severity.LOW)
    assert transition(Standing(C), Standing(D, LOW), settings) is NotifyEvent.DRIFTED


# ---------------------------------------------------------------------------------------- messages


def test_a_message_says_in_one_sentence_what_broke_when_and_why_then_the_other_worst_findings_and_a_link() -> (
    None
):
    findings = (
        finding(LOW, "a tag changed"),
        finding(HIGH, "the function's code differs"),
        opened_trust(),
        finding(Severity.MEDIUM, "a boundary was removed"),
    )
    message = render_audit_message(
        NotifyEvent.BROKEN,
        lab_audit(B, *findings),
        Standing(C),
        "http://auditor.example:8080",
        "Ada Lovelace",
    )
    assert message.title == "pair-07 (Ada Lovelace) is broken"
    assert message.kind is NotifyType.FAILURE
    lines = message.body.splitlines()
    assert lines[0] == (
        "pair-07 (Ada Lovelace) is broken since 14:05 UTC, was conformant: trust policy lets any principal "
        "assume the role (admits arn:aws:iam::999999999999:root to sts:AssumeRole; changed by "
        "assumed-role/student/alice at 14:02 from 203.0.113.5)."
    )
    assert lines[1].startswith("- high trust_policy: the function's code differs")
    assert lines[2].startswith("- medium")
    assert lines[3] == "- and 1 more finding"
    assert lines[4] == "Details: http://auditor.example:8080/labs/pair-07"


def test_a_drift_is_a_warning_and_a_critical_one_a_failure_a_recovery_a_success() -> None:
    drifted = render_audit_message(
        NotifyEvent.DRIFTED, lab_audit(D, finding(HIGH, "wider")), Standing(C), None
    )
    assert (drifted.title, drifted.kind) == ("pair-07 is drifted", NotifyType.WARNING)
    assert drifted.body == "pair-07 is drifted since 14:05 UTC, was conformant: wider."
    critical = render_audit_message(NotifyEvent.DRIFTED, lab_audit(D, opened_trust()), Standing(C), None)
    assert critical.kind is NotifyType.FAILURE
    back = render_audit_message(NotifyEvent.RECOVERED, lab_audit(C), Standing(D, HIGH), None, "Ada Lovelace")
    assert (back.title, back.kind) == ("pair-07 (Ada Lovelace) is conformant again", NotifyType.SUCCESS)
    assert back.body == "pair-07 (Ada Lovelace) is conformant again since 14:05 UTC, was drifted."
    assert notify_type(NotifyEvent.TEARDOWN_FAILED) is NotifyType.FAILURE
    assert notify_type(NotifyEvent.ERROR) is NotifyType.WARNING


def test_without_the_page_there_is_no_link_and_an_error_says_why() -> None:
    audit = lab_audit(E, error="AccessDenied: not authorized to perform sts:AssumeRole")
    message = render_audit_message(NotifyEvent.ERROR, audit, None, None)
    assert message.title == "pair-07 could not be audited"
    assert message.body == (
        "pair-07 could not be audited since 14:05 UTC: AccessDenied: not authorized to perform sts:AssumeRole."
    )


def test_a_lab_name_is_quoted_in_its_link() -> None:
    message = render_audit_message(
        NotifyEvent.RECOVERED, lab_audit(C, lab="a b/c"), Standing(B), "http://h:1"
    )
    assert message.body.endswith("Details: http://h:1/labs/a%20b%2Fc")


def test_only_the_top_three_findings_are_listed() -> None:
    lines = finding_lines([finding(LOW, str(n)) for n in range(5)])
    assert len(lines) == 4 and lines[-1] == "- and 2 more findings"


# --------------------------------------------------------------------------------------- the watch


def watch(settings: NotifySettings = SETTINGS, **standings: Standing) -> tuple[LabWatch, list[Message]]:
    sent: list[Message] = []
    return LabWatch(settings, sent.append, "http://h:1", standings), sent


def test_a_repeated_verdict_sends_nothing_and_a_change_sends_one() -> None:
    lab_watch, sent = watch()
    for verdict, findings in [(C, ()), (B, (opened_trust(),)), (B, (opened_trust(),)), (C, ()), (C, ())]:
        lab_watch.audited(lab_audit(verdict, *findings))
    assert [message.event for message in sent] == [NotifyEvent.BROKEN, NotifyEvent.RECOVERED]


def test_a_standing_known_from_the_store_is_not_announced_again() -> None:
    lab_watch, sent = watch(**{"pair-07": Standing(B, HIGH)})
    lab_watch.audited(lab_audit(B, opened_trust()))
    assert sent == []


def test_a_failing_teardown_is_announced_once_until_it_succeeds() -> None:
    lab_watch, sent = watch()
    assert lab_watch.teardown_failed("pair-07", "DeleteRole: AccessDenied")
    assert not lab_watch.teardown_failed("pair-07", "DeleteRole: AccessDenied")
    lab_watch.torn_down("pair-07")
    assert lab_watch.teardown_failed("pair-07", "DeleteRole: AccessDenied")
    assert [m.title for m in sent] == ["pair-07: teardown failed"] * 2
    assert "DeleteRole: AccessDenied" in sent[0].body


def test_the_page_address_is_the_setting_or_the_bound_address_or_none_when_off() -> None:
    def host() -> str:
        return "auditor.example"

    assert page_address("", "127.0.0.1", 8080, host) == "http://127.0.0.1:8080"
    assert page_address("", "0.0.0.0", 8080, host) == "http://auditor.example:8080"
    assert page_address("", "::1", 8080, host) == "http://[::1]:8080"
    assert page_address("https://lab.example/auditor", "0.0.0.0", 8080, host) == "https://lab.example/auditor"
    assert page_address("https://lab.example", "127.0.0.1", 0, host) is None


@pytest.mark.parametrize("name", ["localhost", "localhost.localdomain", "127.0.1.1", ""])
def test_bound_to_every_address_a_machine_called_localhost_gets_no_link_but_the_configured_url_wins(
    name: str,
) -> None:
    assert page_address("", "0.0.0.0", 8080, lambda: name) is None
    assert page_address("", "::", 8080, lambda: name) is None
    public = "https://auditor.example.edu/class"
    assert page_address(public, "0.0.0.0", 8080, lambda: name) == public


def test_the_watch_names_the_student_in_every_message() -> None:
    sent: list[Message] = []
    lab_watch = LabWatch(SETTINGS, sent.append, None, {}, {"pair-07": "Ada Lovelace"})
    lab_watch.audited(lab_audit(B, opened_trust()))
    lab_watch.teardown_failed("pair-07", "DeleteRole: AccessDenied")
    assert [m.title for m in sent] == [
        "pair-07 (Ada Lovelace) is broken",
        "pair-07 (Ada Lovelace): teardown failed",
    ]
    assert sent[1].body.startswith("The teardown of pair-07 (Ada Lovelace) at its expiry failed")


def test_the_students_names_come_from_the_rosters_student_name() -> None:
    labs = (
        replace(pair(1), info={"student_name": "Karen Spärck Jones", "student_email": "k@example.edu"}),
        replace(pair(2), info={"student_email": "nameless@example.edu"}),
    )
    assert students_of(make_config(labs)) == {"pair-01": "Karen Spärck Jones"}


# ------------------------------------------------------------------------------ sending with Apprise


def sample(lab: str = "pair-07") -> Message:
    return Message(
        lab, NotifyEvent.BROKEN, f"{lab} is broken", "pair-07 is broken since 14:05 UTC.", NotifyType.FAILURE
    )


def test_a_message_reaches_the_receiver_exactly_once() -> None:
    with running_receiver() as receiver:
        notifier = Notifier([receiver.url()], retry_delays=(0.05,))
        notifier.start()
        notifier.send(sample())
        body = receiver.next(timeout=10)
        notifier.stop()
    assert (body["title"], body["message"]) == ("pair-07 is broken", sample().body)
    assert body["type"] == "failure"  # Apprise's notify type, from the message's severity
    assert len(receiver.all) == 1


def test_a_failed_send_is_retried_with_backoff_until_it_goes_through() -> None:
    outcomes: list[str] = []
    with running_receiver(statuses=[500, 503]) as receiver, capture_logs() as logs:
        notifier = Notifier([receiver.url()], retry_delays=(0.05, 0.1, 0.2), count=outcomes.append)
        notifier.start()
        notifier.send(sample())
        receiver.next(timeout=10)
        notifier.stop()
    assert receiver.attempts == 3 and len(receiver.all) == 1
    retries = [entry for entry in logs if entry["event"] == "notification_retrying"]
    assert [entry["retry_in"] for entry in retries] == [0.05, 0.1]
    assert [entry["attempts"] for entry in logs if entry["event"] == "notification_sent"] == [3]
    assert outcomes == ["retried", "retried", "sent"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def product_logging() -> Iterator[None]:
    """The daemon's own logging set-up (stdlib loggers included), undone afterwards."""
    saved = structlog.get_config()
    configure_logging("debug", json_lines=True)
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("product_logging")
def test_a_receiver_that_is_down_is_logged_after_the_last_retry_without_its_url(
    capfd: pytest.CaptureFixture[str],
) -> None:
    url = f"json://hook:s3cr3t-pass@127.0.0.1:{closed_port()}/s3cr3t-path"
    with capture_logs() as logs:
        notifier = Notifier([url], retry_delays=(0.01, 0.02))
        notifier.start()
        notifier.send(sample())
        wait_until(lambda: any(entry["event"] == "notification_failed" for entry in logs))
        notifier.stop(timeout=10)
    events = [entry for entry in logs if entry["event"].startswith("notification")]
    assert [entry["event"] for entry in events] == [
        "notification_retrying",
        "notification_retrying",
        "notification_failed",
    ]
    assert events[-1]["attempts"] == 3 and events[-1]["target"] == "1 (JSON)"
    everything = json.dumps(logs, default=str) + "".join(capfd.readouterr())
    assert "s3cr3t" not in everything


def test_a_receiver_that_hangs_delays_neither_the_caller_nor_the_other_targets() -> None:
    with running_receiver(hold=True) as stuck, running_receiver() as healthy:
        notifier = Notifier([stuck.url(), healthy.url()], retry_delays=())
        notifier.start()
        notifier.send(sample("pair-01"))  # returns at once: the stuck target holds only its own worker
        assert stuck.holding.wait(10)
        notifier.send(sample("pair-02"))
        assert [healthy.next(10)["title"], healthy.next(10)["title"]] == [
            "pair-01 is broken",
            "pair-02 is broken",
        ]
        assert stuck.all == []  # still held while the healthy target got both
        stuck.release.set()
        notifier.stop(timeout=10)
    assert [body["title"] for body in stuck.all] == ["pair-01 is broken", "pair-02 is broken"]


def test_stopping_gives_a_waiting_retry_one_last_try_instead_of_waiting_it_out() -> None:
    with running_receiver(statuses=[500]) as receiver:
        notifier = Notifier([receiver.url()], retry_delays=(3600,))
        notifier.start()
        notifier.send(sample())
        wait_until(lambda: receiver.attempts == 1)
        notifier.stop(timeout=10)
    assert receiver.attempts == 1 and receiver.all == []


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not condition():
            assert not done.wait(0.01), "timed out"
    finally:
        deadline.cancel()


def test_the_invoke_result_does_not_disturb_a_message() -> None:
    audit = lab_audit(B, opened_trust(), invoke=InvokeResult(False, "assume_denied", "denied"))
    message = render_audit_message(NotifyEvent.BROKEN, audit, Standing(C), None)
    assert "Details:" not in message.body and "trust policy lets any principal" in message.body


@pytest.mark.parametrize(("page_url", "warned"), [("", True), ("https://auditor.example.edu", False)])
def test_a_page_bound_to_every_address_without_page_url_is_warned_of_at_start(
    tmp_path: Path, page_url: str, warned: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    config = replace(
        make_config((pair(1),), database_url=url),
        daemon=DaemonSettings(health_host="0.0.0.0", health_port=8080),
        notify=replace(SETTINGS, page_url=page_url),
    )
    store = Store.from_url(url)
    try:
        with capture_logs() as logs:
            opened = open_watch(config, lambda: store, lambda: "localhost")
    finally:
        store.close()
    assert opened is not None
    lab_watch, _ = opened
    assert lab_watch.page_url == (page_url or None)  # never a link to localhost
    unset = [entry for entry in logs if entry["event"] == "notify_page_url_unset"]
    assert bool(unset) is warned
    if warned:
        assert "[notify] page_url" in unset[0]["detail"] and unset[0]["log_level"] == "warning"
