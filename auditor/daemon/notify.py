"""Notifications (interface.md, "Notifications"): one message per transition of a lab, through Apprise.

Three parts. `transition` and `render_*` are pure: which standing of a lab is worth a message, and
what the message says. `Notifier` sends through Apprise, off the caller's thread: one worker and
one queue per target URL (so a slow or dead target delays no other and messages keep their order),
retried with backoff, every failure logged without the URL, which may hold a secret. `LabWatch`
holds each lab's last standing (seeded from the store, so a restart announces nothing again) and
ties the two together; the daemon calls it after each audit and on a failed teardown.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote

import apprise
import structlog

from auditor.domain.config import Config, NotifyEvent, NotifySettings
from auditor.domain.explain import explanation
from auditor.domain.model import Finding, LabAudit, Severity, Verdict
from auditor.store import DatabaseUnavailable, RecordedRun, Store

log = structlog.get_logger()

TOP_FINDINGS = 3
RETRY_DELAYS: tuple[float, ...] = (2, 5, 15, 30, 60, 120)  # seconds before each retry; then it is dropped
QUEUE_LIMIT = 1000  # messages waiting per target; beyond that the newest are dropped (and logged)
ERROR_CHARS = 300
# The daemon records the audits it cut short at a stop as errors that start so; they say nothing about
# the lab, so a restart reads each lab's standing from the run before (see open_watch).
ABANDONED_PREFIX = "abandoned:"


# ------------------------------------------------------------------------------------- transitions


@dataclass(frozen=True)
class Standing:
    """Where a lab stands after an audit, as far as notifications care."""

    verdict: Verdict
    worst: Severity | None = None  # the most severe finding's severity

    @classmethod
    def of(cls, verdict: Verdict, findings: Iterable[Finding]) -> Standing:
        worst = max((finding.severity for finding in findings), key=lambda s: s.rank, default=None)
        return cls(verdict, worst)


def alarm(standing: Standing | None, min_severity: Severity) -> NotifyEvent | None:
    """The event a standing is worth on its own; None for a lab that needs nobody's attention."""
    if standing is None:
        return None
    if standing.verdict is Verdict.BROKEN:
        return NotifyEvent.BROKEN
    if standing.verdict is Verdict.ERROR:
        return NotifyEvent.ERROR
    if (
        standing.verdict is Verdict.DRIFTED
        and standing.worst is not None
        and standing.worst.rank >= min_severity.rank
    ):
        return NotifyEvent.DRIFTED
    return None


def transition(previous: Standing | None, current: Standing, settings: NotifySettings) -> NotifyEvent | None:
    """The event to announce when a lab goes from `previous` (None: never audited) to `current`.

    A lab is announced when it enters an alarm (broken, error, or drifted at min_severity or above),
    and as recovered when it is conformant again after an alarm that was announced. An audit that
    finds the lab as it stood before sends nothing.
    """
    before = alarm(previous, settings.min_severity)
    now = alarm(current, settings.min_severity)
    if now is not None:
        event = now if now is not before else None
    elif current.verdict is Verdict.CONFORMANT and before is not None and before in settings.on:
        event = NotifyEvent.RECOVERED
    else:
        event = None
    return event if event in settings.on else None


# ---------------------------------------------------------------------------------------- messages


class NotifyType(StrEnum):
    """How loud a message is: Apprise's notify types, which set its colour or icon where shown."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True)
class Message:
    lab: str
    event: NotifyEvent
    title: str
    body: str
    kind: NotifyType = NotifyType.INFO


def notify_type(event: NotifyEvent, worst: Severity | None = None) -> NotifyType:
    """A broken lab, a critical finding or a teardown left undone: failure; a drift or an audit that
    could not finish: warning; back to conformant: success."""
    if event in (NotifyEvent.BROKEN, NotifyEvent.TEARDOWN_FAILED) or worst is Severity.CRITICAL:
        return NotifyType.FAILURE
    if event in (NotifyEvent.DRIFTED, NotifyEvent.ERROR):
        return NotifyType.WARNING
    if event is NotifyEvent.RECOVERED:
        return NotifyType.SUCCESS
    return NotifyType.INFO


_TITLES = {
    NotifyEvent.BROKEN: "{lab} is broken",
    NotifyEvent.DRIFTED: "{lab} is drifted",
    NotifyEvent.ERROR: "{lab} could not be audited",
    NotifyEvent.RECOVERED: "{lab} is conformant again",
    NotifyEvent.TEARDOWN_FAILED: "{lab}: teardown failed",
}
# The message's first sentence, up to its time: "pair-09 (Ada Lovelace) is drifted since 10:02 UTC".
_STANDS = {
    NotifyEvent.BROKEN: "is broken",
    NotifyEvent.DRIFTED: "is drifted",
    NotifyEvent.ERROR: "could not be audited",
    NotifyEvent.RECOVERED: "is conformant again",
}


def lab_page(page_url: str | None, lab: str) -> str | None:
    return f"{page_url}/labs/{quote(lab, safe='')}" if page_url else None


def named(lab: str, student: str = "") -> str:
    """`pair-09 (Ada Lovelace)`, or the lab's name alone without a roster's name."""
    return f"{lab} ({student})" if student else lab


def render_audit_message(
    event: NotifyEvent,
    audit: LabAudit,
    previous: Standing | None,
    page_url: str | None,
    student: str = "",
) -> Message:
    """One sentence (who, what it is now, since when, what it was, and why), the other worst findings
    with their witness and actor, the lab's page."""
    ranked = worst_findings(audit.findings)
    lines = [opening_sentence(event, audit, previous, student, ranked)]
    lines.extend(finding_lines(ranked, skip=1 if ranked else 0))
    who = named(audit.lab, student)
    kind = notify_type(event, ranked[0].severity if ranked else None)
    return _message(audit.lab, event, _TITLES[event].format(lab=who), lines, page_url, kind)


def opening_sentence(
    event: NotifyEvent, audit: LabAudit, previous: Standing | None, student: str, ranked: Sequence[Finding]
) -> str:
    """`pair-09 (Ada Lovelace) is drifted since 10:02 UTC, was conformant: trust policy ... (admits ...).`"""
    at = _clock(audit.finished_at or audit.started_at)
    sentence = f"{named(audit.lab, student)} {_STANDS[event]}"
    sentence += f" since {at}" if at else ""
    sentence += f", was {previous.verdict.value}" if previous is not None else ""
    if event is not NotifyEvent.RECOVERED and (reason := _reason(audit, ranked)):
        sentence += f": {reason}"
    return sentence.rstrip(".") + "."


def _reason(audit: LabAudit, ranked: Sequence[Finding]) -> str:
    """Why, in a clause: the error that stopped the audit, else the worst finding (with its explanation)."""
    if audit.error:
        return _shortened(audit.error)
    if not ranked:
        return ""
    worst = ranked[0]
    explained = explanation(worst)
    return f"{worst.message.rstrip('.')} ({explained})" if explained else worst.message


def render_teardown_message(lab: str, detail: str, page_url: str | None, student: str = "") -> Message:
    lines = [
        f"The teardown of {named(lab, student)} at its expiry failed; it is tried again on the next check.",
        detail,
    ]
    title = _TITLES[NotifyEvent.TEARDOWN_FAILED].format(lab=named(lab, student))
    return _message(lab, NotifyEvent.TEARDOWN_FAILED, title, lines, page_url, NotifyType.FAILURE)


def worst_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Most severe first; among equals, those that break the lab first."""
    return sorted(findings, key=lambda f: (-f.severity.rank, not f.breaks_lab))


def finding_lines(findings: Sequence[Finding], top: int = TOP_FINDINGS, skip: int = 0) -> list[str]:
    """The `top` most severe findings (those that break the lab first among equals), one line each,
    leaving out the first `skip` (the one the opening sentence already tells)."""
    ranked = worst_findings(findings)
    lines = []
    for finding in ranked[skip:top]:
        line = f"- {finding.severity.value} {finding.check}: {finding.message}"
        if explained := explanation(finding):
            line += f" ({explained})"
        lines.append(line)
    if len(ranked) > top:
        more = len(ranked) - top
        lines.append(f"- and {more} more finding{'s' if more != 1 else ''}")
    return lines


def _message(
    lab: str, event: NotifyEvent, title: str, lines: list[str], page_url: str | None, kind: NotifyType
) -> Message:
    if link := lab_page(page_url, lab):
        lines = [*lines, f"Details: {link}"]
    return Message(lab, event, title, "\n".join(line for line in lines if line), kind)


def _clock(moment: datetime | None) -> str:
    """`14:02 UTC` (a message is read soon after the audit it tells), or "" when the audit noted no time."""
    return moment.astimezone(UTC).strftime("%H:%M UTC") if moment is not None else ""


def _shortened(text: str) -> str:
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


# ------------------------------------------------------------------------------------------ sending

_STOP = object()


class _Target:
    """One Apprise URL with its own queue and worker; known in logs by its number and service only."""

    def __init__(
        self,
        number: int,
        url: str,
        delays: Sequence[float],
        stopping: threading.Event,
        count: Callable[[str], None],
    ) -> None:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:  # the configuration was checked; this is a URL that bypassed it
            raise ValueError(f"notification target {number} is not a URL Apprise can send to")
        self.name = f"{number} ({plugin.service_name})"
        self._apprise = apprise.Apprise()
        self._apprise.add(plugin)
        self._delays, self._stopping, self._count = delays, stopping, count
        self.queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_LIMIT)
        self.thread = threading.Thread(target=self._work, name=f"notify-{number}", daemon=True)

    def offer(self, message: Message) -> None:
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            self._count("dropped")
            log.error(
                "notification_dropped",
                lab=message.lab,
                notify_event=message.event.value,
                target=self.name,
                reason="queue full",
            )

    def _work(self) -> None:
        while (item := self.queue.get()) is not _STOP:
            assert isinstance(item, Message)
            self._deliver(item)

    def _deliver(self, message: Message) -> None:
        """Send, retrying with backoff; once the notifier stops, one last try each and no more waiting."""
        attempt = 0
        while True:
            attempt += 1
            if self._send_once(message):
                self._count("sent")
                log.info(
                    "notification_sent",
                    lab=message.lab,
                    notify_event=message.event.value,
                    target=self.name,
                    attempts=attempt,
                )
                return
            if attempt > len(self._delays) or self._stopping.is_set():
                break
            delay = self._delays[attempt - 1]
            self._count("retried")
            log.warning(
                "notification_retrying",
                lab=message.lab,
                notify_event=message.event.value,
                target=self.name,
                attempt=attempt,
                retry_in=delay,
            )
            if self._stopping.wait(delay):
                break
        self._count("failed")
        log.error(
            "notification_failed",
            lab=message.lab,
            notify_event=message.event.value,
            target=self.name,
            attempts=attempt,
        )

    def _send_once(self, message: Message) -> bool:
        try:
            return bool(
                self._apprise.notify(
                    body=message.body, title=message.title, notify_type=apprise.NotifyType(message.kind.value)
                )
            )
        except Exception as error:  # a plugin's bug must not end the worker; its text may hold the URL
            log.warning("notification_error", target=self.name, error_type=type(error).__name__)
            return False


class Notifier:
    """Sends messages to every target, off the caller's thread; `send` never blocks and never raises."""

    def __init__(
        self,
        urls: Sequence[str],
        retry_delays: Sequence[float] = RETRY_DELAYS,
        count: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        """`count` is told each outcome: sent, retried, failed or dropped (the daemon's metrics)."""
        self._stopping = threading.Event()
        self._targets = [
            _Target(number, url, tuple(retry_delays), self._stopping, count)
            for number, url in enumerate(urls, start=1)
        ]

    @property
    def targets(self) -> int:
        return len(self._targets)

    def start(self) -> None:
        for target in self._targets:
            target.thread.start()

    def send(self, message: Message) -> None:
        for target in self._targets:
            target.offer(message)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop retrying; what is queued gets one try each within `timeout`, the rest is logged as dropped."""
        self._stopping.set()
        for target in self._targets:
            with contextlib.suppress(queue.Full):
                target.queue.put(_STOP, timeout=timeout)
        for target in self._targets:
            if target.thread.is_alive():
                target.thread.join(timeout)
            if target.thread.is_alive() or target.queue.qsize():
                log.error("notifications_dropped", target=target.name, waiting=target.queue.qsize())


# ---------------------------------------------------------------------------------------- the watch


class LabWatch:
    """Each lab's last standing, and the message its next audit is worth; safe to call from any thread."""

    def __init__(
        self,
        settings: NotifySettings,
        send: Callable[[Message], None],
        page_url: str | None,
        standings: Mapping[str, Standing] | None = None,
        students: Mapping[str, str] | None = None,
    ) -> None:
        """`students`: each lab's student's name, from the roster (a lab without one is named alone)."""
        self.settings, self._send, self.page_url = settings, send, page_url
        self._students = dict(students or {})
        self._lock = threading.Lock()
        self._standings: dict[str, Standing] = dict(standings or {})
        self._failing_teardowns: set[str] = set()

    def audited(self, audit: LabAudit) -> NotifyEvent | None:
        """Note the lab's new standing; send a message if it is a transition worth one."""
        current = Standing.of(audit.verdict, audit.findings)
        with self._lock:
            previous = self._standings.get(audit.lab)
            self._standings[audit.lab] = current
        event = transition(previous, current, self.settings)
        if event is not None:
            student = self._students.get(audit.lab, "")
            self._send(render_audit_message(event, audit, previous, self.page_url, student))
        return event

    def teardown_failed(self, lab: str, detail: str) -> bool:
        """Announce a failed teardown once, not on every retry; True if a message was sent."""
        with self._lock:
            first = lab not in self._failing_teardowns
            self._failing_teardowns.add(lab)
        if not first or NotifyEvent.TEARDOWN_FAILED not in self.settings.on:
            return False
        self._send(render_teardown_message(lab, detail, self.page_url, self._students.get(lab, "")))
        return True

    def torn_down(self, lab: str) -> None:
        with self._lock:
            self._failing_teardowns.discard(lab)
            self._standings.pop(lab, None)


def standings_of(runs: Mapping[str, RecordedRun]) -> dict[str, Standing]:
    """Each lab's standing from its latest recorded run."""
    return {lab: Standing.of(run.verdict, run.findings) for lab, run in runs.items()}


_WILDCARDS = ("", "0.0.0.0", "::")


def page_address(page_url: str, host: str, port: int, hostname: Callable[[], str]) -> str | None:
    """Where people reach the daemon's page: `page_url`, else the bound address (bound to every address:
    this machine's name); None with the page off, or when that name would send people to their own
    machine (`localhost`): a link that leads nowhere is worse than none."""
    if port == 0:
        return None
    if page_url:
        return page_url
    if host in _WILDCARDS:
        host = hostname()
        if _is_loopback_name(host):
            return None
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _is_loopback_name(name: str) -> bool:
    name = name.strip().lower().rstrip(".")
    return not name or name.split(".")[0] == "localhost" or name.startswith("127.") or name == "::1"


def students_of(config: Config) -> dict[str, str]:
    """Each lab's student's name, from the roster's `student_name`."""
    return {lab.name: name for lab in config.labs if (name := lab.info.get("student_name", ""))}


def open_watch(
    config: Config,
    store: Callable[[], Store],
    hostname: Callable[[], str],
    count: Callable[[str], None] = lambda outcome: None,
) -> tuple[LabWatch, Notifier] | None:
    """The watch and its notifier as `[notify]` sets them (not yet started); None without any URL.

    Each lab's standing is seeded from its latest recorded run (passing over audits the daemon
    abandoned at a stop), so a restart announces nothing again.
    """
    settings = config.notify
    if settings is None or not settings.urls:
        return None
    notifier = Notifier(settings.urls, count=count)
    daemon = config.daemon
    page = page_address(settings.page_url, daemon.health_host, daemon.health_port, hostname)
    if not settings.page_url and daemon.health_port and daemon.health_host in _WILDCARDS:
        log.warning(
            "notify_page_url_unset",
            detail="the page listens on every address: set [notify] page_url to the address people reach "
            f"it at (the messages link to {page or 'nothing'})",
        )
    try:
        standings = standings_of(store().latest_runs(except_errors_starting=ABANDONED_PREFIX))
    except DatabaseUnavailable as error:
        log.warning("notify_standings_unknown", error=str(error))
        standings = {}
    return LabWatch(settings, notifier.send, page, standings, students_of(config)), notifier
