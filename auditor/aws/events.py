"""Change events: EventBridge rules in the lab accounts deliver IAM and Lambda API calls to an SQS
queue of the operator's; the daemon long-polls it and audits the lab that changed within seconds.

On real AWS, IAM is a global service whose CloudTrail events arrive on the event bus of us-east-1
only: the rules for IAM must live there, whatever the lab's region (see docs/daemon.md, "Change events").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from auditor.aws.accounts import OPERATOR, AccountSessions
from auditor.aws.cloudtrail import Change, change_from_record
from auditor.common.errors import OperationalError, is_not_found
from auditor.domain.config import Config, EventsSettings, LabConfig
from auditor.domain.spec import (
    DESTINATION_ROLE,
    EVENT_FORWARDING_ROLE,
    EVENT_RULE,
    EVENT_TARGET_ID,
    FUNCTION,
    ORIGIN_ROLE,
    change_event_pattern,
)

log = structlog.get_logger()

LAB_RESOURCE_NAMES = {ORIGIN_ROLE, DESTINATION_ROLE, FUNCTION, EVENT_FORWARDING_ROLE}
DEFAULT_QUEUE_NAME = "lab-auditor-events"


# ------------------------------------------------------------------------------------ pure mapping


@dataclass(frozen=True)
class EventMatch:
    labs: tuple[str, ...]
    reason: str  # why nothing matched, for the log
    change: Change | None = None  # who changed what, when the CloudTrail record says so


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
    return EventMatch(labs, "", change_from_record(detail, str(account), str(event.get("region") or "")))


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


def operator_bus_arn(sessions: AccountSessions, region: str) -> str:
    """The operator's default event bus, which the lab accounts' rules target (a read: nothing is wired)."""
    account = sessions.client(OPERATOR, "sts").get_caller_identity()["Account"]
    return f"arn:aws:events:{region}:{account}:event-bus/default"


# The statements the project adds to the operator's policies, known by their Sid: only these are ever
# changed or removed, never an operator's own.
BUS_SID_PREFIX = "lab-auditor-account-"
QUEUE_SID = "lab-auditor-operator-rule"


def bus_sid(account: str) -> str:
    return f"{BUS_SID_PREFIX}{account}"


def queue_statement(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """The queue admits EventBridge, for the operator's rule only."""
    return {
        "Sid": QUEUE_SID,
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }


def _statements(policy: str | None) -> list[dict[str, Any]]:
    if not policy:
        return []
    document = json.loads(policy)
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def policy_with(policy: str | None, statement: dict[str, Any]) -> str | None:
    """The policy with the statement of that Sid as given, others kept; None when it already is (pure)."""
    statements = _statements(policy)
    if statement in statements:
        return None
    kept = [other for other in statements if other.get("Sid") != statement["Sid"]]
    return json.dumps({"Version": "2012-10-17", "Statement": [*kept, statement]})


def policy_without(policy: str | None, sid: str) -> str | None:
    """The policy less the statement of that Sid ("" when none is left); None when it has no such one."""
    statements = _statements(policy)
    kept = [other for other in statements if other.get("Sid") != sid]
    if len(kept) == len(statements):
        return None
    return json.dumps({"Version": "2012-10-17", "Statement": kept}) if kept else ""


def admitted_accounts(bus_policy: str | None) -> set[str]:
    """The lab accounts the project's statements admit to the bus (pure)."""
    return {
        str(statement["Sid"]).removeprefix(BUS_SID_PREFIX)
        for statement in _statements(bus_policy)
        if str(statement.get("Sid", "")).startswith(BUS_SID_PREFIX)
    }


def wire_operator_bus(
    settings: EventsSettings,
    sessions: AccountSessions,
    endpoint_url: str | None,
    accounts: Iterable[str] = (),
) -> None:
    """The operator's side: a rule on its default event bus sending lab change events to the queue, the
    queue's policy admitting that rule, and the bus's policy admitting each lab account's events.

    The provisioner's explicit first step when [events] is on (idempotent: only what is missing is added).
    The lab accounts' rules forward to this bus (cross-account, and from us-east-1 cross-region, delivery
    goes bus to bus).
    """
    url = queue_url(settings, sessions, endpoint_url)
    sqs = sessions.client(OPERATOR, "sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "Policy"])["Attributes"]
    events = sessions.client(OPERATOR, "events")
    rule_arn = events.put_rule(
        Name=EVENT_RULE, EventPattern=json.dumps(change_event_pattern()), State="ENABLED"
    )["RuleArn"]
    events.put_targets(Rule=EVENT_RULE, Targets=[{"Id": EVENT_TARGET_ID, "Arn": attributes["QueueArn"]}])
    policy = policy_with(attributes.get("Policy"), queue_statement(attributes["QueueArn"], rule_arn))
    if policy is not None:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    admitted = admitted_accounts(events.describe_event_bus(Name="default").get("Policy"))
    for account in sorted(set(accounts) - admitted):
        events.put_permission(
            EventBusName="default", Action="events:PutEvents", Principal=account, StatementId=bus_sid(account)
        )
    log.info("operator_bus_wired", queue=url, accounts_admitted=len(set(accounts) - admitted))


def release_operator_bus(
    settings: EventsSettings,
    sessions: AccountSessions,
    endpoint_url: str | None,
    accounts_in_use: set[str],
) -> None:
    """After a teardown: the bus stops admitting the lab accounts no lab uses any more; when none is used,
    the queue's statement and the operator's rule go too. Only what the project added, by its Sids."""
    events = sessions.client(OPERATOR, "events")
    admitted = admitted_accounts(events.describe_event_bus(Name="default").get("Policy"))
    for account in sorted(admitted - accounts_in_use):
        events.remove_permission(EventBusName="default", StatementId=bus_sid(account))
    if accounts_in_use:
        return
    url = queue_url(settings, sessions, endpoint_url)
    sqs = sessions.client(OPERATOR, "sqs")
    policy = policy_without(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"].get("Policy"),
        QUEUE_SID,
    )
    if policy is not None:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    _delete_operator_rule(events)
    log.info("operator_bus_released", queue=url, accounts_released=len(admitted))


def _delete_operator_rule(events: Any) -> None:
    """Our target off the operator's rule, and the rule itself unless an operator added targets of their own."""
    try:
        targets = events.list_targets_by_rule(Rule=EVENT_RULE).get("Targets", [])
    except ClientError as error:
        if is_not_found(error):
            return
        raise
    if any(target["Id"] == EVENT_TARGET_ID for target in targets):
        events.remove_targets(Rule=EVENT_RULE, Ids=[EVENT_TARGET_ID])
    if all(target["Id"] == EVENT_TARGET_ID for target in targets):
        events.delete_rule(Name=EVENT_RULE)


def lab_accounts(labs: Iterable[LabConfig]) -> set[str]:
    return {account for lab in labs for account in (lab.origin.account_id, lab.destination.account_id)}


def _described(change: Change | None) -> dict[str, str]:
    """The change's actor for the log line (an ARN, an event name and id: no credentials in a record)."""
    if change is None:
        return {}
    actor = change.actor
    return {"actor": actor.arn, "event_name": actor.event_name, "event_id": actor.event_id}


class EventListener:
    """Long-polls the queue in a thread of its own; a bad message is logged and dropped, never fatal."""

    def __init__(
        self,
        config: Config,
        sessions: AccountSessions,
        endpoint_url: str | None,
        audit_soon: Callable[[str, timedelta, Change | None], None],
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
                self.audit_soon(lab, self.settings.coalesce, match.change)
            log.info("change_event", labs=list(match.labs), **_described(match.change))
            self.on_message("matched")
        else:
            log.warning("event_dropped", reason=match.reason, message_id=message.get("MessageId"))
            self.on_message("dropped")
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
