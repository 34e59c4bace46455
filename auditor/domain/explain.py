"""A finding's witness and actor in one line a person can read (interface.md, "A witness and an actor").

"admits arn:aws:iam::999999999999:root to sts:AssumeRole; changed by assumed-role/student/alice at
14:02 from 203.0.113.5". Pure: notifications, the daemon's page and the reports share it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from auditor.domain.model import Actor, Finding, Side, Witness


def explanation(finding: Finding) -> str:
    """The witness, then who changed it; "" when the finding carries neither."""
    parts = []
    if finding.witness is not None:
        parts.append(witness_line(finding.witness))
    if finding.changed_by is not None:
        parts.append(actor_line(finding.changed_by))
    return "; ".join(parts)


def witness_line(witness: Witness) -> str:
    if witness.principal:
        what = f"admits {witness.principal} to {witness.action}"
    else:
        what = f"allows {witness.action} on {witness.resource}"
    if witness.allowed_by is Side.EXPECTED:
        what = "no longer " + what
    if witness.context:
        what += " when " + ", ".join(
            f"{key}={'|'.join(value) if isinstance(value, tuple) else value}"
            for key, value in sorted(witness.context.items())
        )
    return what


def actor_line(actor: Actor) -> str:
    line = f"changed by {who(actor.arn)}"
    if actor.event_time:
        line += f" at {clock_time(actor.event_time)}"
    if actor.source_ip:
        line += f" from {actor.source_ip}"
    return line


def who(arn: str) -> str:
    """An identity without its ARN's boilerplate: `assumed-role/student/alice`, `user/bob`."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return arn  # a service principal or an unexpected form: as CloudTrail wrote it
    account, resource = parts[4], parts[5]
    return f"the root user of {account}" if resource == "root" else resource


def clock_time(moment: datetime) -> str:
    """`14:02` of an instant, in UTC."""
    return moment.astimezone(UTC).strftime("%H:%M")
