"""Fetch the actual state of a lab into plain values (auditor/domain/actual.py): the audit's, the provisioner's
and the teardown's one way to read a lab. Each kind of resource reads its own entries, by key.

Few requests: a role costs GetRole, ListRolePolicies, one GetRolePolicy per inline policy and
ListAttachedRolePolicies; managed policy and boundary documents are fetched only when something is
attached (which is drift anyway).
"""

from __future__ import annotations

from auditor.app.target import LabClients, LabTarget
from auditor.aws.accounts import AccountSessions
from auditor.domain.actual import ActualLab
from auditor.resources.near import with_near_names
from auditor.resources.registry import REGISTRY


def collect_lab(
    sessions: AccountSessions, target: LabTarget, *, for_teardown: bool = False, near_names: bool = False
) -> ActualLab:
    """Everything the spec names, in accounts checked to be the configured ones first; with
    `near_names` (students build the lab), what is missing is looked for under a near name too."""
    clients = LabClients(sessions, target)
    clients.verify()
    actual = REGISTRY.collect(clients, target.expected, for_teardown=for_teardown)
    return with_near_names(clients, target.expected, actual) if near_names else actual
