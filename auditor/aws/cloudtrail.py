"""Who made a change: CloudTrail's record of an API call, read into the actor and the lab resources it touched.

A record comes two ways: as the `detail` of an EventBridge "AWS API Call via CloudTrail" event (the change
events, auditor/aws/events.py), or as the `CloudTrailEvent` of CloudTrail's event history (`LookupEvents`, for a
change a scheduled audit found without an event). The same pure reading serves both.

A finding gets the actor of the latest successful call, made before its audit, that touched that very
resource in a way that can cause it (`explain`). Nothing else: a failed call changed nothing, a record
without an identity names nobody, a call about another resource explains nothing. Unknown stays absent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from auditor.domain.declarations import SHIPPED, Catalogue
from auditor.domain.model import Actor, Finding, LabAudit, check_of
from auditor.domain.spec import IAM_EVENTS_REGION

Codes = frozenset[str] | None  # None: every finding of the resource and of what lies beneath it

# The services whose calls name the lab's resources in their request parameters, by CloudTrail's
# eventSource: IAM's name a role (and an inline policy), Lambda's a function. Which calls count, and the
# findings each can change, are the kinds' declarations (auditor/resources/kinds/*.toml).
_SERVICES = {"iam.amazonaws.com": "iam", "lambda.amazonaws.com": "lambda"}


@dataclass(frozen=True)
class Touched:
    """A resource a call touched (its ARN, as findings name it) and the codes of findings of it the call
    can change."""

    resource: str
    codes: Codes

    def explains(self, finding: Finding) -> bool:
        if self.codes is None:
            return finding.resource == self.resource or finding.resource.startswith(self.resource + "/")
        return finding.resource == self.resource and finding.code in self.codes


@dataclass(frozen=True)
class Change:
    """One successful call that changed lab resources, and who made it."""

    actor: Actor
    touched: frozenset[Touched]

    def explains(self, finding: Finding) -> bool:
        return any(touched.explains(finding) for touched in self.touched)

    def to_json(self) -> dict[str, Any]:
        """As a replica's queued job carries it to whichever replica runs the audit."""
        return {
            "actor": self.actor.to_json(),
            "touched": [
                {"resource": t.resource, "codes": None if t.codes is None else sorted(t.codes)}
                for t in sorted(self.touched, key=lambda t: t.resource)
            ],
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any], catalogue: Catalogue = SHIPPED) -> Change | None:
        actor = Actor.from_json(document.get("actor"))
        if actor is None:
            return None
        touched = frozenset(
            Touched(item["resource"], _codes_of(item, catalogue)) for item in document.get("touched", ())
        )
        return cls(actor, touched)


def _codes_of(item: Mapping[str, Any], catalogue: Catalogue) -> Codes:
    """A touched resource's codes; a job queued by a replica of before codes names checks: their codes."""
    if "checks" in item and "codes" not in item:
        if item["checks"] is None:
            return None
        return frozenset(code for code in catalogue.codes() if check_of(code) in item["checks"])
    return None if item.get("codes") is None else frozenset(item["codes"])


# ------------------------------------------------------------------------------------ reading a record


def change_from_record(
    record: Mapping[str, Any], account: str = "", region: str = "", catalogue: Catalogue = SHIPPED
) -> Change | None:
    """The change a CloudTrail record describes; None when it names nobody, failed, or touched nothing we know.

    `account` and `region` stand in for the record's own `recipientAccountId` and `awsRegion` when it
    lacks them (an EventBridge envelope carries both).
    """
    if record.get("errorCode"):
        return None  # refused or failed: it changed nothing
    actor = actor_from_record(record)
    if actor is None:
        return None
    touched = touched_resources(record, account, region, catalogue)
    return Change(actor, touched) if touched else None


def actor_from_record(record: Mapping[str, Any]) -> Actor | None:
    """`userIdentity` and the call's facts; None without an identity to name (never a guess)."""
    identity = _mapping(record.get("userIdentity"))
    who = _text(identity.get("arn")) or _text(identity.get("invokedBy"))
    if not who:
        return None
    issuer = _mapping(_mapping(identity.get("sessionContext")).get("sessionIssuer"))
    return Actor(
        arn=who,
        type=_text(identity.get("type")),
        event_name=_text(record.get("eventName")),
        event_time=parse_time(record.get("eventTime")),
        event_id=_text(record.get("eventID")),
        source_ip=_text(record.get("sourceIPAddress")),
        user_agent=_text(record.get("userAgent")),
        session_issuer=_text(issuer.get("arn")),
    )


def touched_resources(
    record: Mapping[str, Any], account: str = "", region: str = "", catalogue: Catalogue = SHIPPED
) -> frozenset[Touched]:
    """The lab resources a call's request parameters name (pure): roles, their inline policies, functions,
    each with the findings the kinds declare the call can change."""
    account = _text(record.get("recipientAccountId")) or account
    region = _text(record.get("awsRegion")) or region
    parameters = _mapping(record.get("requestParameters"))
    service = _SERVICES.get(_text(record.get("eventSource")))
    reach = catalogue.reach(service, _text(record.get("eventName"))) if service else None
    if reach is None:
        return frozenset()
    codes = None if reach.whole else reach.codes
    if service == "iam":
        return _role_touched(account, codes, parameters)
    return _function_touched(account, region, codes, parameters)


def _role_touched(account: str, codes: Codes, parameters: Mapping[str, Any]) -> frozenset[Touched]:
    role = _text(parameters.get("roleName"))
    if not role or not account or "/" in role:
        return frozenset()
    role_arn = f"arn:aws:iam::{account}:role/{role}"
    touched = {Touched(role_arn, codes)}
    policy = _text(parameters.get("policyName"))
    if policy and codes:
        touched.add(Touched(f"{role_arn}/inline-policy/{policy}", codes))
    return frozenset(touched)


def _function_touched(
    account: str, region: str, codes: Codes, parameters: Mapping[str, Any]
) -> frozenset[Touched]:
    """functionName may be a name, a full or partial ARN, with or without a version or alias."""
    named = _text(parameters.get("functionName"))
    if ":function:" in named:
        head, _, rest = named.partition(":function:")
        fields = head.split(":")
        if len(fields) >= 5 and fields[0] == "arn":  # arn:aws:lambda:REGION:ACCOUNT
            region, account = fields[3], fields[4]
        elif len(fields) == 1 and fields[0].isdigit():  # ACCOUNT:function:NAME
            account = fields[0]
        named = rest.split(":", 1)[0]
    if not named or not account or not region or ":" in named:
        return frozenset()
    return frozenset({Touched(f"arn:aws:lambda:{region}:{account}:function:{named}", codes)})


def parse_time(value: Any) -> datetime | None:
    """CloudTrail's `eventTime` ("2026-11-29T14:02:11Z"), aware; None when absent or not a time."""
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# --------------------------------------------------------------------------------- explaining findings


def explain(
    findings: Sequence[Finding], changes: Iterable[Change], before: datetime | None
) -> tuple[Finding, ...]:
    """Each finding without an actor gets the one of the latest change, made before `before`, that touched
    that very resource in a way that can cause it; the others stay as they are."""
    known = [change for change in changes if _in_time(change, before)]
    explained = []
    for finding in findings:
        if finding.changed_by is None:
            candidates = [change for change in known if change.explains(finding)]
            if candidates:
                finding = replace(finding, changed_by=_latest(candidates).actor)
        explained.append(finding)
    return tuple(explained)


def carried_forward(findings: Sequence[Finding], previous: Sequence[Finding]) -> tuple[Finding, ...]:
    """A finding the lab's previous audit found in the very same state keeps the actor found then: the same
    state has the same cause (a newer change to it would show as a different state, or as a newer event)."""
    actors = {_state(found): found.changed_by for found in previous if found.changed_by is not None}
    return tuple(
        replace(found, changed_by=actors[_state(found)])
        if found.changed_by is None and _state(found) in actors
        else found
        for found in findings
    )


def _state(finding: Finding) -> tuple[str, ...]:
    document = finding.to_json()
    return tuple(
        json.dumps(document.get(key), sort_keys=True, default=str)
        for key in ("check", "resource", "status", "effect", "expected", "actual")
    )


def _in_time(change: Change, before: datetime | None) -> bool:
    when = change.actor.event_time
    return before is None or when is None or when <= before


def _latest(changes: list[Change]) -> Change:
    # A change without a time (an event that lacked one) ranks below any timed one; ties keep the first.
    return max(
        changes, key=lambda change: (change.actor.event_time is not None, change.actor.event_time or 0)
    )


# --------------------------------------------------------------------------------- CloudTrail's history


class RateLimiter:
    """At most `rate` requests a second for each key (an account and region: CloudTrail's LookupEvents
    allows 2), shared by every thread of the process. Each caller reserves the next free slot, then waits
    for it outside the lock, so callers are served in turn and none starves."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_free: dict[tuple[str, ...], float] = {}

    def acquire(self, *key: str) -> float:
        """Wait for this key's next slot; returns how long it waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_free.get(key, now))
            self._next_free[key] = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait


LOOKUP_RATE = 2.0  # requests a second, per account and region (CloudTrail's quota for LookupEvents)
LOOKUP_PAGE = 50  # events a page, CloudTrail's maximum


@dataclass(frozen=True)
class Lookup:
    """One question to CloudTrail's event history: the calls that named `resource_name` in that account
    and region (IAM's are recorded in us-east-1, Lambda's in the function's region)."""

    account: str
    region: str
    resource_name: str


def lookups_for(findings: Sequence[Finding]) -> list[Lookup]:
    """Where the calls that could explain the findings without an actor are recorded (pure)."""
    wanted: dict[Lookup, None] = {}
    for finding in findings:
        if finding.changed_by is None and (lookup := _lookup_of(finding.resource)) is not None:
            wanted[lookup] = None
    return list(wanted)


def _lookup_of(resource: str) -> Lookup | None:
    fields = resource.split(":", 5)
    if len(fields) != 6 or fields[0] != "arn":
        return None
    service, region, account, rest = fields[2], fields[3], fields[4], fields[5]
    if service == "iam" and rest.startswith("role/"):
        return Lookup(account, IAM_EVENTS_REGION, rest.removeprefix("role/").split("/", 1)[0])
    if service == "lambda" and rest.startswith("function:"):
        return Lookup(account, region, rest.removeprefix("function:").split(":", 1)[0])
    return None


class CloudTrailHistory:
    """The changes CloudTrail's event history holds about a lab's resources, within a bounded number of
    requests an audit and the process's shared rate limit; botocore's retries absorb throttling."""

    def __init__(
        self,
        client_for: Callable[[str, str], Any],
        limiter: RateLimiter,
        max_requests: int = 6,
    ) -> None:
        self.client_for = client_for  # (account, region) -> a CloudTrail client of that account there
        self.limiter = limiter
        self.max_requests = max_requests

    def changes(self, lookups: Sequence[Lookup], since: datetime, until: datetime) -> list[Change]:
        """The successful calls on those resources between the two instants, newest first, as far as the
        budget reaches (pages of one lookup before the next: the newest calls are the likeliest causes)."""
        budget = self.max_requests
        found: list[Change] = []
        for lookup in lookups:
            pages, budget = self._pages(lookup, since, until, budget)
            for page in pages:
                found.extend(_changes_in(page, lookup))
        return found

    def _pages(
        self, lookup: Lookup, since: datetime, until: datetime, budget: int
    ) -> tuple[list[Mapping[str, Any]], int]:
        client = self.client_for(lookup.account, lookup.region)
        request: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": lookup.resource_name}],
            "StartTime": since,
            "EndTime": until,
            "MaxResults": LOOKUP_PAGE,
        }
        pages = []
        while budget > 0:
            self.limiter.acquire(lookup.account, lookup.region)
            page = client.lookup_events(**request)
            budget -= 1
            pages.append(page)
            token = page.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        return pages, budget


def _changes_in(page: Mapping[str, Any], lookup: Lookup) -> list[Change]:
    changes = []
    for event in page.get("Events", []):
        try:
            record = json.loads(event.get("CloudTrailEvent") or "")
        except (ValueError, TypeError, RecursionError):
            continue
        if isinstance(record, dict):
            change = change_from_record(record, lookup.account, lookup.region)
            if change is not None:
                changes.append(change)
    return changes


# ------------------------------------------------------------------------------------ an audit's actors


def explain_audit(audit: LabAudit, changes: Iterable[Change], previous: Sequence[Finding] = ()) -> LabAudit:
    """The audit with its findings' actors: from the change events received before it began (so all made
    before it), then from the lab's previous audit for a finding found there in the very same state."""
    findings = carried_forward(explain(audit.findings, changes, None), previous)
    return replace(audit, findings=findings)


def look_up_actors(audit: LabAudit, history: CloudTrailHistory, since: datetime) -> LabAudit:
    """The audit with actors from CloudTrail's event history for the findings still without one, from
    `since` (the lab's last conformant audit) to the audit's start."""
    until = audit.started_at
    lookups = lookups_for(audit.findings)
    if until is None or not lookups or since >= until:
        return audit
    changes = history.changes(lookups, since, until)
    return replace(audit, findings=explain(audit.findings, changes, until))
