"""`auditor permissions`: the least-privilege policies of auditor/resources/permissions.py, printed, or
the CloudFormation template of auditor/resources/rollout.py that rolls them out to the lab accounts.

What it prints comes from the options first, then the configuration file (the role name of its
role_arns, their external_id, the operator's account of [events] queue_url, [class] built_by, [lab]
region), then the defaults. The configuration is read when `--config` (or $AUDITOR_CONFIG) names it, or
when ./config.toml is there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
from click.core import ParameterSource

from auditor.cli.options import config_option_saying, handles_errors, read_config
from auditor.domain.config import ConfigError
from auditor.domain.spec import IAM_EVENTS_REGION
from auditor.resources.permissions import (
    ACCESS_ROLE,
    ORGANIZATIONS_ROLE,
    PolicyPart,
    check_access_role,
    check_account_id,
    check_external_id,
    permission_documents,
    queue_arn_from_url,
)
from auditor.resources.rollout import ConfiguredAccess, configured_access, stack_set_template, template_parts

SCHEMA = "auditor.permissions/v1"


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


@dataclass(frozen=True)
class Chosen:
    """What the documents are written for: each value from its option, else the configuration, else the default."""

    operator_account: str | None
    external_id: str | None
    access_role: str
    access_role_from: str  # where the role name came from, for the warnings
    queue_arn: str | None
    built_by: str
    lab_region: str
    change_events: bool


def _configured(context: click.Context, config_path: str) -> tuple[ConfiguredAccess | None, str]:
    """The configuration's values, or None when no file was named and ./config.toml is not there."""
    named = context.get_parameter_source("config_path") in (
        ParameterSource.COMMANDLINE,
        ParameterSource.ENVIRONMENT,
    )
    if not named and not Path(config_path).is_file():
        return None, ""
    return configured_access(read_config(config_path)), config_path


def _chosen(
    configured: ConfiguredAccess | None,
    config_path: str,
    operator_account: str | None,
    external_id: str | None,
    access_role: str | None,
    queue_arn: str | None,
) -> Chosen:
    known = configured or ConfiguredAccess(None, None, None, None, "provisioner", IAM_EVENTS_REGION, False)
    if access_role is not None:
        role, role_from = access_role, "--access-role"
    elif known.access_role is not None:
        role, role_from = known.access_role, f"{config_path}'s role_arn"
        try:
            check_access_role(role)
        except ValueError as error:
            raise ConfigError(config_path, "role_arn", str(error)) from None
    else:
        role, role_from = ACCESS_ROLE, "the default"
    queue_account = queue_arn.split(":")[4] if queue_arn else None  # --queue-url's: the operator's queue
    return Chosen(
        operator_account=operator_account or queue_account or known.operator_account,
        external_id=external_id or known.external_id,
        access_role=role,
        access_role_from=role_from,
        queue_arn=queue_arn or known.queue_arn,
        built_by=known.built_by,
        lab_region=known.lab_region,
        change_events=known.change_events,
    )


def _administrator_role(chosen: Chosen) -> str | None:
    if chosen.access_role != ORGANIZATIONS_ROLE:
        return None
    return (
        f"{ORGANIZATIONS_ROLE} (from {chosen.access_role_from}) is the administrator role AWS Organizations "
        "made in every member account: the auditor would hold AdministratorAccess, not these policies. "
        f"Make a role of its own (--access-role {ACCESS_ROLE}) and set each account's role_arn to it"
    )


def _print_template(chosen: Chosen, part: str) -> None:
    if warning := _administrator_role(chosen):
        raise click.UsageError(f"{warning}: the template cannot create a role that is already there")
    try:
        template_parts(part)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--part") from None
    template = stack_set_template(
        part=part,
        built_by=chosen.built_by,
        access_role=chosen.access_role,
        operator_account=chosen.operator_account,
        external_id=chosen.external_id,
        lab_region=chosen.lab_region,
        change_events=chosen.change_events,
    )
    click.echo(json.dumps(template, indent=2))


def _print_documents(chosen: Chosen, part: str, output_format: str) -> None:
    if chosen.operator_account is None:
        raise click.UsageError(
            "the trust policy names the operator's account: give --operator-account ID, or set [events] "
            "queue_url in the configuration (the queue is in the operator's account)"
        )
    if warning := _administrator_role(chosen):
        click.echo(f"warning: {warning}.", err=True)
    documents = permission_documents(
        chosen.operator_account,
        chosen.external_id,
        access_role=chosen.access_role,
        queue_arn=chosen.queue_arn,
        part=part,
        built_by=chosen.built_by,
    )
    if output_format == "json":
        payload = {
            "schema": SCHEMA,
            "part": part,
            "built_by": chosen.built_by,
            **{d.name: {"explanation": d.explanation, "document": d.document} for d in documents},
        }
        click.echo(json.dumps(payload, indent=2))
        return
    for number, document in enumerate(documents, start=1):
        if number > 1:
            click.echo("")
        click.echo(f"# {number}. {document.title}. {document.explanation}")
        click.echo(json.dumps(document.document, indent=2))


@click.command("permissions")
@config_option_saying(
    "The configuration to read the role name, external id, operator account ([events] queue_url), "
    "[class] built_by and [lab] region from (or $AUDITOR_CONFIG; ./config.toml only when it is there)."
)
@click.option(
    "--part",
    type=click.Choice([p.value for p in PolicyPart]),
    default=PolicyPart.ALL.value,
    show_default=True,
    help="daemon: what the always-on daemon holds (reads, the invoke, its teardown at expiry); provision: "
    "what only `auditor provision` adds to it; all: both.",
)
@click.option(
    "--operator-account",
    metavar="ID",
    callback=_validated(check_account_id),
    help="The operator's AWS account id (12 digits): the account trusted to assume the access role "
    "(default: the account of --queue-url, else of [events] queue_url).",
)
@click.option(
    "--external-id",
    metavar="TEXT",
    callback=_validated(check_external_id),
    help="Require this external id in the trust policy (default: the accounts' external_id).",
)
@click.option(
    "--access-role",
    metavar="NAME",
    callback=_validated(check_access_role),
    help=f"The name of the role the auditor assumes in each lab account (default: the role of the "
    f"accounts' role_arn, else {ACCESS_ROLE}).",
)
@click.option(
    "--queue-url",
    "queue_arn",
    metavar="URL",
    callback=_validated(queue_arn_from_url),
    help="The change-event queue (default: [events] queue_url, else any queue of the operator's account).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "cloudformation"]),
    default="text",
    show_default=True,
    help="text: each document under a one-line explanation; json: one document for scripts; "
    "cloudformation: a template for a StackSet over the lab accounts.",
)
@click.pass_context
@handles_errors
def permissions_command(
    context: click.Context,
    config_path: str,
    part: str,
    operator_account: str | None,
    external_id: str | None,
    access_role: str | None,
    queue_arn: str | None,
    output_format: str,
) -> None:
    """Print the least-privilege IAM policies the auditor needs, derived from the calls its code makes.

    Three documents: the permissions of the role assumed in each lab account, that role's trust
    policy, and the permissions of the operator's own credentials; `--part daemon` what the always-on
    daemon holds (it can pass no role, write no code and no policy), `--part provision` what only
    `auditor provision` adds. `--format cloudformation` writes a template for a StackSet over the lab
    accounts: the role with its policies and trust, and the change-event rule with its role. Values
    come from the options, else the configuration, else the defaults.

    \b
    Example:
      auditor permissions --config deploy/config.toml --operator-account 123456789012
      auditor permissions --operator-account 123456789012 --external-id classroom-2026 --part daemon
      auditor permissions --config deploy/config.toml --format cloudformation > lab-auditor.json
    """
    configured, path = _configured(context, config_path)
    for warning in configured.warnings if configured else ():
        click.echo(f"warning: {warning}", err=True)
    chosen = _chosen(configured, path, operator_account, external_id, access_role, queue_arn)
    if output_format == "cloudformation":
        _print_template(chosen, part)
    else:
        _print_documents(chosen, part, output_format)
