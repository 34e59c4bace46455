"""Change events: EventBridge rules in the lab accounts deliver IAM and Lambda API calls to an SQS
queue of the operator's; the daemon long-polls it and audits the lab that changed within seconds.

On real AWS, IAM is a global service whose CloudTrail events arrive on the event bus of us-east-1
only: the rules for IAM must live there, whatever the lab's region (see README, "Change events").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from auditor.accounts import OPERATOR, AccountSessions
from auditor.config import Config, EventsSettings
from auditor.errors import OperationalError
from auditor.resources.kinds.event_rule import TARGET_ID
from auditor.spec import DESTINATION_ROLE, EVENT_RULE, FUNCTION, ORIGIN_ROLE, change_event_pattern

log = structlog.get_logger()

LAB_RESOURCE_NAMES = {ORIGIN_ROLE, DESTINATION_ROLE, FUNCTION}
DEFAULT_QUEUE_NAME = "lab-auditor-events"


# ------------------------------------------------------------------------------------ pure mapping


@dataclass(frozen=True)
class EventMatch:
    labs: tuple[str, ...]
    reason: str  # why nothing matched, for the log


def labs_by_account(config: Config) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for lab in config.labs:
        for account in {lab.origin.account_id, lab.destination.account_id}:
            index.setdefault(account, []).append(lab.name)
    return {account: tuple(names) for account, names in index.items()}


def labs_for_message(body: str, index: Mapping[str, tuple[str, ...]]) -> EventMatch:
    """Which labs a queue message concerns; malformed or foreign messages match none, with a reason."""
    try:
        event = json.loads(body)
    except (ValueError, TypeError, RecursionError):  # nesting deep enough to exhaust the stack
        return EventMatch((), "not JSON")
    if not isinstance(event, dict) or "detail" not in event or "detail-type" not in event:
        return EventMatch((), "not an EventBridge event")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return EventMatch((), "event without a detail object")
    # The account that made the call: EventBridge's "account", or CloudTrail's own field when an
    # event was forwarded from another bus.
    account = event.get("account") or detail.get("recipientAccountId")
    labs = index.get(str(account), ())
    if not labs:
        return EventMatch((), f"account {str(account)[:20]!r} belongs to no lab")
    if not _names_a_lab_resource(detail):
        return EventMatch((), "the call names no resource of the lab")
    return EventMatch(labs, "")


def _names_a_lab_resource(detail: Mapping[str, Any]) -> bool:
    parameters = detail.get("requestParameters")
    if not isinstance(parameters, dict):
        return True  # CloudTrail left them out: audit rather than miss a change
    named = {str(parameters.get(key, "")) for key in ("roleName", "functionName")}
    named = {name.rsplit(":", 1)[-1] for name in named if name}
    return not named or bool(named & LAB_RESOURCE_NAMES)


# ------------------------------------------------------------------------------------ the queue


def queue_url(settings: EventsSettings, sessions: AccountSessions, endpoint_url: str | None) -> str:
    """The configured queue, or on an emulator with none configured, one made for the purpose."""
    if settings.queue_url:
        return settings.queue_url
    if not endpoint_url:
        raise OperationalError("[events] queue_url is required on real AWS")
    sqs = sessions.client(OPERATOR, "sqs")
    return str(sqs.create_queue(QueueName=DEFAULT_QUEUE_NAME)["QueueUrl"])


def queue_arn(sessions: AccountSessions, url: str) -> str:
    sqs = sessions.client(OPERATOR, "sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attributes["QueueArn"])


def operator_bus_arn(sessions: AccountSessions, region: str) -> str:
    """The operator's default event bus, which the lab accounts' rules target (a read: nothing is wired)."""
    account = sessions.client(OPERATOR, "sts").get_caller_identity()["Account"]
    return f"arn:aws:events:{region}:{account}:event-bus/default"


def wire_operator_bus(settings: EventsSettings, sessions: AccountSessions, endpoint_url: str | None) -> None:
    """The operator's side: a rule on its default event bus sending lab change events to the queue.

    The provisioner's explicit first step when [events] is on. The rules in the lab accounts forward to
    this bus (cross-account delivery goes bus to bus); the bus's resource policy must admit the lab
    accounts on real AWS (README, "Change events").
    """
    queue = queue_arn(sessions, queue_url(settings, sessions, endpoint_url))
    events = sessions.client(OPERATOR, "events")
    events.put_rule(Name=EVENT_RULE, EventPattern=json.dumps(change_event_pattern()), State="ENABLED")
    events.put_targets(Rule=EVENT_RULE, Targets=[{"Id": TARGET_ID, "Arn": queue}])


class EventListener:
    """Long-polls the queue in a thread of its own; a bad message is logged and dropped, never fatal."""

    def __init__(
        self,
        config: Config,
        sessions: AccountSessions,
        endpoint_url: str | None,
        audit_soon: Callable[[str, timedelta], None],
        on_message: Callable[[str], None] = lambda fate: None,
    ) -> None:
        assert config.events is not None
        self.settings = config.events
        self.index = labs_by_account(config)
        self.audit_soon = audit_soon
        self.on_message = on_message  # "matched" or "dropped", for the metrics
        try:
            self.url = queue_url(self.settings, sessions, endpoint_url)
        except (ClientError, BotoCoreError) as error:
            raise OperationalError(f"cannot reach the events queue: {error}") from None
        self.sqs = sessions.client(OPERATOR, "sqs", read_timeout=self.settings.wait_seconds + 10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)

    def start(self) -> None:
        log.info("events_listening", queue=self.url)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.wait_seconds + 5)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self.poll_once()
                backoff = 1.0
            except Exception as error:  # the listener must outlive any one bad poll or message
                log.warning("events_poll_failed", error=f"{type(error).__name__}: {error}", retry_in=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)

    def poll_once(self) -> int:
        answer = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=self.settings.wait_seconds
        )
        messages = answer.get("Messages", [])
        for message in messages:
            self.handle(message)
        return len(messages)

    def handle(self, message: Mapping[str, Any]) -> None:
        match = labs_for_message(str(message.get("Body", "")), self.index)
        if match.labs:
            for lab in match.labs:
                self.audit_soon(lab, self.settings.coalesce)
            log.info("change_event", labs=list(match.labs))
            self.on_message("matched")
        else:
            log.warning("event_dropped", reason=match.reason, message_id=message.get("MessageId"))
            self.on_message("dropped")
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
