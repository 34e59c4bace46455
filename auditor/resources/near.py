"""Near names of what is missing (lab.md, "Near names"): when students build the lab, a role or the
function that is not there may be there under a name the student mistyped. Looked for only then, and
only for what is missing: a ListRoles or ListFunctions in that account."""

from __future__ import annotations

from dataclasses import replace

from auditor.domain.actual import ActualLab
from auditor.domain.spec import ExpectedLab, ResourceKey
from auditor.resources.base import Clients
from auditor.resources.kinds.function import near_function_name
from auditor.resources.kinds.role import near_role_name


def with_near_names(clients: Clients, expected: ExpectedLab, actual: ActualLab) -> ActualLab:
    """The lab with each missing role's and the missing function's near name, where one is found."""
    found: dict[ResourceKey, object] = {}
    for spec, role in zip(expected.roles, actual.roles, strict=True):
        if not role.exists:
            found[spec.key] = replace(
                role, near_name=near_role_name(clients.client(spec.account_id, "iam"), spec)
            )
    function = expected.function
    if not actual.function.exists:
        near = near_function_name(clients.client(function.account_id, "lambda"), function)
        found[function.key] = replace(actual.function, near_name=near)
    return actual.with_entries(found) if found else actual
