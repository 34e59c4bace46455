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
from auditor.resources.registry import REGISTRY


def collect_lab(sessions: AccountSessions, target: LabTarget, *, for_teardown: bool = False) -> ActualLab:
    """Everything the spec names, in accounts checked to be the configured ones first."""
    clients = LabClients(sessions, target)
    clients.verify()
    return REGISTRY.collect(clients, target.expected, for_teardown=for_teardown)
