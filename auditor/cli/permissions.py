"""`auditor permissions`: the least-privilege policies of auditor/resources/permissions.py, printed."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from auditor.resources.permissions import (
    ACCESS_ROLE,
    check_account_id,
    check_external_id,
    check_role_name,
    permission_documents,
    queue_arn_from_url,
)


def _validated(
    check: Callable[[str], object],
) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A click callback from a check: a bad value is a usage error (exit 2); a returned string replaces it."""

    def callback(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            result = check(value)
        except ValueError as error:
            raise click.BadParameter(str(error), context, parameter) from None
        return value if result is None else str(result)

    return callback


@click.command("permissions")
@click.option(
    "--operator-account",
    required=True,
    metavar="ID",
    callback=_validated(check_account_id),
    help="The operator's AWS account id (12 digits): the account trusted to assume the access role.",
)
@click.option(
    "--external-id",
    metavar="TEXT",
    callback=_validated(check_external_id),
    help="Require this external id in the trust policy (the external_id of the configuration).",
)
@click.option(
    "--access-role",
    default=ACCESS_ROLE,
    show_default=True,
    metavar="NAME",
    callback=_validated(check_role_name),
    help="The name of the role the auditor assumes in each lab account.",
)
@click.option(
    "--queue-url",
    "queue_arn",
    metavar="URL",
    callback=_validated(queue_arn_from_url),
    help="The change-event queue ([events] queue_url); default: any queue of the operator's account.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: each document under a one-line explanation; json: one document for scripts.",
)
def permissions_command(
    operator_account: str,
    external_id: str | None,
    access_role: str,
    queue_arn: str | None,
    output_format: str,
) -> None:
    """Print the least-privilege IAM policies the auditor needs, derived from the calls its code makes.

    Three documents: the permissions of the role assumed in each lab account, that role's trust
    policy, and the permissions of the operator's own credentials.

    \b
    Example:
      auditor permissions --operator-account 123456789012 --external-id classroom-2026
      auditor permissions --operator-account 123456789012 --format json > policies.json
    """
    documents = permission_documents(
        operator_account, external_id, access_role=access_role, queue_arn=queue_arn
    )
    if output_format == "json":
        payload = {
            "schema": "auditor.permissions/v1",
            **{d.name: {"explanation": d.explanation, "document": d.document} for d in documents},
        }
        click.echo(json.dumps(payload, indent=2))
        return
    for number, document in enumerate(documents, start=1):
        if number > 1:
            click.echo("")
        click.echo(f"# {number}. {document.title}. {document.explanation}")
        click.echo(json.dumps(document.document, indent=2))
