"""What a command or a scheduler job opens at the edge and passes in: config, AWS sessions, targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditor.accounts import AccountSessions, client_settings
from auditor.config import Config, LabConfig
from auditor.emulator import resolve_endpoint
from auditor.spec import render
from provisioner.apply import LabTarget


@dataclass(frozen=True)
class Runtime:
    config: Config
    sessions: AccountSessions
    endpoint_url: str | None

    def targets(self, names: Sequence[str] = ()) -> list[LabTarget]:
        return [self.target(lab) for lab in self.config.select(tuple(names))]

    def target(self, lab: LabConfig) -> LabTarget:
        return LabTarget(lab, render(lab, self.config.lab))


def open_runtime(config: Config) -> Runtime:
    endpoint_url = resolve_endpoint(config.aws.endpoint_url)
    settings = client_settings(config.aws, config.lab.region, config.audit.concurrency, endpoint_url)
    return Runtime(config, AccountSessions(settings), endpoint_url)
