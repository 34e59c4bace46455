"""What a command or a scheduler job opens at the edge and passes in: config, AWS sessions, targets."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from auditor.accounts import AccountSessions, client_settings
from auditor.config import Config
from auditor.emulator import resolve_endpoint
from auditor.local_lambda import LocalLambda
from auditor.spec import render
from provisioner.apply import LabTarget


class Runtime:
    def __init__(
        self, config: Config, sessions: AccountSessions, endpoint_url: str | None, local_lambda: LocalLambda
    ) -> None:
        self.config, self.sessions, self.endpoint_url = config, sessions, endpoint_url
        self.local_lambda = local_lambda  # owned: closed with this runtime

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the processes this runtime started (the local Lambda stand-in's)."""
        self.local_lambda.close()

    def targets(self, names: Sequence[str] = (), *, for_provisioning: bool = False) -> list[LabTarget]:
        """The labs named (or all); only provisioning needs the change-event wiring, made on first use."""
        bus = self.events_bus_arn if for_provisioning else None
        return [LabTarget(lab, render(lab, self.config.lab, bus)) for lab in self.config.select(tuple(names))]

    @functools.cached_property
    def events_bus_arn(self) -> str | None:
        """Where the lab accounts send change events; wired once, and only when [events] is configured."""
        if self.config.events is None:
            return None
        from auditor.events import wire_operator_bus

        return wire_operator_bus(self)


def open_runtime(config: Config, *, local_lambda: LocalLambda | None = None) -> Runtime:
    """The runtime of `config`; it owns `local_lambda` (a new one if None) and closes it."""
    endpoint_url = resolve_endpoint(config.aws.endpoint_url)
    settings = client_settings(config.aws, config.lab.region, config.audit.concurrency, endpoint_url)
    return Runtime(config, AccountSessions(settings), endpoint_url, local_lambda or LocalLambda())
