"""The change events' preflight ([events]): each lab account must have a CloudTrail trail that is logging
the management events (write calls) of IAM and Lambda where its change-event rules are, or EventBridge
never sees the lab's changes ("AWS API Call via CloudTrail" events come from a trail).

Without one, a `change_events` finding of severity low: the lab still works and the scheduled audits still
see every change, only later. The trail is the account's own: the provisioner makes none and the teardown
removes none; the audit only reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from auditor.domain.actual import ActualLab
from auditor.domain.model import Effect, Finding, Severity, Status
from auditor.domain.spec import TRAIL_KIND, EventRuleSpec, ExpectedLab, ResourceKey
from auditor.resources.base import UNSCOPED, Clients, Facts, Kind, Part, Scope, call, finding

ANY_TRAIL = Scope("ReadTrails", ("arn:aws:cloudtrail:*:*:trail/*",))
KIND_NAME = TRAIL_KIND

# The event source whose calls each rule's pattern watches, as CloudTrail names it.
_EVENT_SOURCES = {"aws.iam": "iam.amazonaws.com", "aws.lambda": "lambda.amazonaws.com"}


@dataclass(frozen=True)
class TrailCoverage:
    """Whether some trail logs the write calls of `sources` in that account and region."""

    account_id: str
    region: str
    sources: tuple[str, ...]
    trail: str | None  # the ARN of a trail that does; None: none does

    @property
    def key(self) -> ResourceKey:
        # Any trail of that account and region would do: its owner is the region, as an event rule's.
        return ResourceKey(KIND_NAME, self.account_id, self.region, "*")


# --------------------------------------------------------------------------------------- pure judgement


def logs_writes_of(selectors: Mapping[str, Any], source: str) -> bool:
    """Whether a trail's event selectors (GetEventSelectors' answer) log the management write calls of
    `source`; basic and advanced selectors as CloudTrail defines them (a trail uses one kind or the other)."""
    advanced = selectors.get("AdvancedEventSelectors")
    if advanced:
        return any(_advanced_logs(selector.get("FieldSelectors", []), source) for selector in advanced)
    return any(
        selector.get("IncludeManagementEvents", True)
        and selector.get("ReadWriteType", "All") in ("All", "WriteOnly")
        and source not in selector.get("ExcludeManagementEventSources", [])
        for selector in selectors.get("EventSelectors", [])
    )


def _advanced_logs(fields: Sequence[Mapping[str, Any]], source: str) -> bool:
    """An advanced selector logs a call when every field selector admits it (they are ANDed)."""
    call = {"eventCategory": "Management", "readOnly": "false", "eventSource": source}
    by_field = {field.get("Field"): field for field in fields}
    if "eventCategory" not in by_field:
        return False  # data, network or insight events only
    return all(_admits(field, call.get(str(field.get("Field")))) for field in fields)


def _admits(field: Mapping[str, Any], value: str | None) -> bool:
    if value is None:
        return False  # a field a management event does not have: it admits nothing of ours
    if "Equals" in field and value not in field["Equals"]:
        return False
    if value in field.get("NotEquals", ()):
        return False
    if "StartsWith" in field and not any(value.startswith(p) for p in field["StartsWith"]):
        return False
    return not any(value.startswith(p) for p in field.get("NotStartsWith", ()))


def _logged(trail: Mapping[str, Any], selectors: Mapping[str, Any], source: str) -> bool:
    """No selectors at all on a trail without custom ones: CloudTrail's default, every management event."""
    if not selectors.get("EventSelectors") and not selectors.get("AdvancedEventSelectors"):
        return not trail.get("HasCustomEventSelectors")
    return logs_writes_of(selectors, source)


def trail_fits(trail: Mapping[str, Any], region: str, sources: Sequence[str]) -> bool:
    """A trail (DescribeTrails) can record the calls of `sources` made in `region`: it spans the region,
    and for IAM's (recorded in us-east-1 as global service events) it includes global service events."""
    spans = bool(trail.get("IsMultiRegionTrail")) or trail.get("HomeRegion") == region
    global_ok = "iam.amazonaws.com" not in sources or bool(trail.get("IncludeGlobalServiceEvents", True))
    return spans and global_ok


def compare_coverage(coverage: TrailCoverage) -> list[Finding]:
    if coverage.trail is not None:
        return []
    services = " and ".join(source.split(".")[0].upper() for source in coverage.sources)
    return [
        finding(
            "change_events.missing",
            coverage.key,
            f"arn:aws:cloudtrail:{coverage.region}:{coverage.account_id}:trail/*",
            Status.MISSING,
            Effect.NONE,
            Severity.LOW,
            f"no CloudTrail trail logs {services} management events of account {coverage.account_id} in "
            f"{coverage.region}: its changes are seen only at the next scheduled audit",
            {"logging": True, "management_events": "write", "event_sources": list(coverage.sources)},
        )
    ]


# --------------------------------------------------------------------------------------------- reading


def collect_coverage(cloudtrail_in: Callable[[str], Any], rule: EventRuleSpec) -> TrailCoverage:
    """The first trail that logs this rule's calls, reading status and selectors only of those that fit
    (in the trail's home region, where CloudTrail answers for it)."""
    sources = tuple(_EVENT_SOURCES[source] for source in rule.pattern.get("source", ()))
    trails = cloudtrail_in(rule.region).describe_trails(includeShadowTrails=True).get("trailList", [])
    for trail in trails:
        if not trail_fits(trail, rule.region, sources):
            continue
        arn, home = trail["TrailARN"], cloudtrail_in(trail.get("HomeRegion") or rule.region)
        if not home.get_trail_status(Name=arn).get("IsLogging"):
            continue
        selectors = home.get_event_selectors(TrailName=arn)
        if all(_logged(trail, selectors, source) for source in sources):
            return TrailCoverage(rule.account_id, rule.region, sources, arn)
    return TrailCoverage(rule.account_id, rule.region, sources, None)


def _wired(expected: ExpectedLab) -> list[EventRuleSpec]:
    return [rule for rule in expected.event_rules if rule.target_arn is not None]


class Trail(Kind):
    name = KIND_NAME
    apply_rank = (4, 1)
    removal_rank = (9, 0)  # removes nothing
    calls: ClassVar = (
        call(
            "cloudtrail:DescribeTrails",
            UNSCOPED,
            Part.PROVISION,
            Part.AUDIT,
            Part.EVENTS,
            used_by="trail.collect_coverage",
        ),
        call(
            "cloudtrail:GetTrailStatus",
            ANY_TRAIL,
            Part.PROVISION,
            Part.AUDIT,
            Part.EVENTS,
            used_by="trail.collect_coverage",
        ),
        call(
            "cloudtrail:GetEventSelectors",
            ANY_TRAIL,
            Part.PROVISION,
            Part.AUDIT,
            Part.EVENTS,
            used_by="trail.collect_coverage",
        ),
    )

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        if for_teardown:
            return {}
        coverage = clients.each(
            lambda rule: collect_coverage(partial(clients.client, rule.account_id, "cloudtrail"), rule),
            _wired(expected),
        )
        return {each.key: each for each in coverage}

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        coverage: list[TrailCoverage] = list(actual.of_kind(self.name).values())
        return [found for each in coverage for found in compare_coverage(each)]


KIND = Trail()
