"""What a command or a scheduler job opens at the edge and passes in, and closes at the end.

A `Context` holds the configuration, the AWS sessions, and what it owns: the embedded emulator when
the configuration asks for one, the local stand-in for the Lambda Python runtime, and the policy
engine that judges its labs (its answers, its CPU places, the configured time limit). Open it with
`open_context(config)` as a context manager; closing it stops what it owns.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from auditor.app.fleet import describe_fault
from auditor.app.target import LabTarget
from auditor.aws.accounts import (
    HOW_TO_SUPPLY_CREDENTIALS,
    AccountSessions,
    accounts_for_one_pass,
    client_settings,
)
from auditor.aws.emulator import (
    FAKE_CREDENTIALS,
    EmbeddedEmulator,
    operator_has_credentials,
    running_emulator,
    state_file_for,
)
from auditor.aws.events import operator_bus_arn
from auditor.aws.local_lambda import LocalLambda
from auditor.common.errors import OperationalError
from auditor.domain.config import EMBEDDED, Config, ConfigError
from auditor.domain.spec import LabShape
from auditor.policy import PolicyEngine, policy_engine
from auditor.resources.registry import REGISTRY

log = structlog.get_logger()


class Closable(Protocol):
    def close(self) -> None: ...


class Context:
    def __init__(
        self,
        config: Config,
        sessions: AccountSessions,
        endpoint_url: str | None,
        *,
        local_lambda: LocalLambda,
        policy_engine: PolicyEngine,
        emulator: Closable | None = None,
    ) -> None:
        self.config, self.sessions, self.endpoint_url = config, sessions, endpoint_url
        self.emulator = emulator
        # What the audit and the provisioner's plan judge with: one engine, the configured time limit.
        self.policy_engine = policy_engine
        # The local stand-in for the Lambda Python runtime (auditor/local_lambda): it starts its
        # processes on first use only, and is closed with the context.
        self.local_lambda = local_lambda
        self._lock = threading.Lock()
        self._bus_arn: str | None = None

    @property
    def ephemeral_emulator(self) -> bool:
        """Whether the labs live in an emulator that ends with this context."""
        return self.emulator is not None

    def rendered_targets(self, names: Sequence[str], events_bus_arn: str | None) -> list[LabTarget]:
        """The labs named (or all), rendered (pure): with the operator's bus (`resolve_events_bus_arn`),
        their change-event rules target it; with None, the rules are only named."""
        return [
            LabTarget(lab, REGISTRY.render(LabShape(lab, self.config.lab, events_bus_arn)))
            for lab in self.config.select(tuple(names))
        ]

    def targets(self, names: Sequence[str] = ()) -> list[LabTarget]:
        """The labs named (or all), rendered with the operator's bus as resolved now: a convenience that
        reads the operator's account (with [events], until it has been read once). Code that renders
        often, or must not call AWS, resolves the bus itself and calls `rendered_targets`."""
        return self.rendered_targets(names, self.resolve_events_bus_arn())

    def require_credentials(self, names: Sequence[str] = ()) -> None:
        """Stop, before anything is asked, changed or recorded, when the operator's credentials that the
        labs named (or all) are reached with cannot be had: one sentence saying how to supply them, not
        a failure a lab (on real AWS only: an emulator takes any credentials)."""
        if self.endpoint_url is not None:
            return
        labs = self.config.select(tuple(names))
        missing = self.sessions.missing_credentials(
            side for lab in labs for side in (lab.origin, lab.destination)
        )
        if missing is not None:
            raise OperationalError(
                f"{missing}: {HOW_TO_SUPPLY_CREDENTIALS}; then `auditor doctor` checks each account"
            )

    def resolve_events_bus_arn(self) -> str | None:
        """Where the lab accounts send change events: read from the operator's account once, then kept;
        wiring it is the provisioner's step.

        None without [events], or while the operator's account cannot be read: the labs' rules are then
        only named (as without [events]), and a later call tries again.
        """
        if self.config.events is None:
            return None
        with self._lock:
            if self._bus_arn is None:
                try:
                    self._bus_arn = operator_bus_arn(self.sessions, self.config.lab.region)
                except (ClientError, BotoCoreError) as error:
                    log.warning("events_bus_unknown", error=describe_fault(error))
            return self._bus_arn

    def close(self) -> None:
        self.sessions.close()
        for owned in (self.local_lambda, self.emulator):
            if owned is not None:
                owned.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_context(
    config: Config,
    *,
    local_lambda: LocalLambda | None = None,
    find_emulator: bool = True,
    cached_accounts: int | None = None,
) -> Context:
    """Sessions for the configured endpoint; it owns `local_lambda` (a new one if None) too, and a
    policy engine of its own with the configured [audit] policy_time_limit.

    The clients of at most `cached_accounts` accounts are kept: by default those of the labs under way
    (a command goes over the class once); the daemon, which comes back every interval, keeps more.

    "embedded" is the lasting emulator beside the configuration when one runs (and `find_emulator`),
    else an emulator that the context starts and owns, gone when it closes.
    """
    endpoint_url = config.aws.endpoint_url or None
    emulator = None
    if endpoint_url == EMBEDDED:
        lasting = running_emulator(state_file_for(config.path)) if find_emulator else None
        if lasting is not None:
            endpoint_url = lasting.url
        else:
            emulator = EmbeddedEmulator()
            endpoint_url = emulator.url
    # An emulator takes any credentials; an operator without any gets fake ones rather than an error.
    fake = FAKE_CREDENTIALS if endpoint_url and not operator_has_credentials() else None
    concurrency = config.audit.concurrency
    kept = cached_accounts or accounts_for_one_pass(concurrency)
    settings = client_settings(
        config.aws, config.lab.region, concurrency, endpoint_url, fake, cached_accounts=kept
    )
    try:
        sessions = AccountSessions(settings)
    except ProfileNotFound as error:  # the operator's AWS_PROFILE names a profile of no AWS config file
        if emulator is not None:
            emulator.close()
        raise ConfigError(
            "environment",
            "AWS_PROFILE",
            f"{error}: name a profile of your AWS config (aws configure sso --profile NAME), or unset it",
        ) from None
    return Context(
        config,
        sessions,
        endpoint_url,
        local_lambda=local_lambda or LocalLambda(),
        policy_engine=policy_engine(config.audit),
        emulator=emulator,
    )
