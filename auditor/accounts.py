"""Access to many AWS accounts: one self-refreshing session per account, clients cached and shared.

Assumed-role credentials use botocore's own refreshable credentials, so a daemon outlives the
one-hour session limit. All account sessions share one data loader: service models are parsed once,
which is most of the cost of a new session (see bench/).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

from auditor.config import AccountAccess, AwsSettings, unvalidated
from auditor.errors import LabFault

SESSION_NAME = "lab-auditor"
RETRY_MODE = "standard"


# The operator's own credentials (no role assumed), e.g. for the change-event queue.
OPERATOR = unvalidated(AccountAccess, account_id="operator")


class AccountAccessError(LabFault):
    """An account could not be reached, or the credentials reach another account than configured."""


@dataclass(frozen=True)
class ClientSettings:
    endpoint_url: str | None
    region: str
    max_attempts: int
    max_pool_connections: int
    connect_timeout: float
    read_timeout: float
    # On an emulator endpoint, for an operator without AWS credentials: fake ones, given to the sessions.
    fake_credentials: Mapping[str, str] | None = None

    def botocore_config(self, **overrides: Any) -> BotoConfig:
        options: dict[str, Any] = {
            "region_name": self.region,
            "retries": {"mode": RETRY_MODE, "total_max_attempts": self.max_attempts},
            "max_pool_connections": self.max_pool_connections,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "user_agent_extra": "lab-auditor",
        }
        options.update(overrides)
        return BotoConfig(**options)


def client_settings(
    aws: AwsSettings,
    region: str,
    concurrency: int,
    endpoint_url: str | None,
    fake_credentials: Mapping[str, str] | None = None,
) -> ClientSettings:
    # Several threads may share an account's client (a lab's origin is another lab's destination).
    return ClientSettings(
        endpoint_url=endpoint_url,
        region=region,
        max_attempts=aws.max_attempts,
        max_pool_connections=max(10, concurrency * 2),
        connect_timeout=aws.connect_timeout,
        read_timeout=aws.read_timeout,
        fake_credentials=fake_credentials,
    )


class AccountSessions:
    """Sessions and clients per (account, region), safe to use from many threads.

    Also counts the API calls made, by service and operation, for the benchmarks and the request
    budget test.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._root = botocore.session.get_session()
        self._loader = self._root.get_component("data_loader")
        self._sessions: dict[tuple[str, str | None, str | None], boto3.Session] = {}
        self._source_session: boto3.Session | None = None
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._verified: set[str] = set()
        self.calls: dict[str, int] = {}
        self._calls_lock = threading.Lock()
        self._thread_calls = threading.local()

    # -------------------------------------------------------------------------------- sessions

    def session(self, access: AccountAccess) -> boto3.Session:
        with self._lock:
            session = self._sessions.get(access.key)
            if session is None:
                session = self._new_session(access)
                self._sessions[access.key] = session
            return session

    def _new_session(self, access: AccountAccess) -> boto3.Session:
        core = botocore.session.Session(profile=access.profile)
        core.register_component("data_loader", self._loader)
        if access.role_arn:
            core._credentials = self._assumed_role_credentials(access)  # botocore has no public setter
        elif not access.profile:
            self._use_fake_credentials(core)
        session = boto3.Session(botocore_session=core, region_name=self.settings.region)
        session.events.register("before-call", self._count_call)
        return session

    def _assumed_role_credentials(self, access: AccountAccess) -> DeferredRefreshableCredentials:
        source_credentials = self._source().get_credentials()
        if source_credentials is None:
            raise AccountAccessError(f"no AWS credentials to assume {access.role_arn} from")
        extra_args: dict[str, Any] = {"RoleSessionName": SESSION_NAME}
        if access.external_id:
            extra_args["ExternalId"] = access.external_id
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=self._source_sts_client,
            source_credentials=source_credentials,
            role_arn=access.role_arn,
            extra_args=extra_args,
        )
        return DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)

    def _source(self) -> boto3.Session:
        """The operator's own credentials, whence every role is assumed: one session for all accounts
        (a botocore session costs more to make than the clients made from it)."""
        with self._lock:
            if self._source_session is None:
                core = botocore.session.Session()
                core.register_component("data_loader", self._loader)
                core.register("before-call", self._count_call)
                self._use_fake_credentials(core)
                self._source_session = boto3.Session(botocore_session=core)
            return self._source_session

    def _use_fake_credentials(self, core: botocore.session.Session) -> None:
        fake = self.settings.fake_credentials
        if fake:
            core.set_credentials(
                fake["AWS_ACCESS_KEY_ID"], fake["AWS_SECRET_ACCESS_KEY"], fake.get("AWS_SESSION_TOKEN")
            )

    def _source_sts_client(self, service_name: str, **kwargs: Any) -> Any:
        # Credential refreshes run on whichever worker needs them; sessions are not thread-safe.
        with self._lock:
            return self._source()._session.create_client(
                service_name,
                endpoint_url=self.settings.endpoint_url,
                config=self.settings.botocore_config(),
                **kwargs,
            )

    # -------------------------------------------------------------------------------- clients

    def client(self, access: AccountAccess, service: str, **config_overrides: Any) -> Any:
        """A cached client for the account; boto3 clients are thread-safe once created."""
        key = (access.key, service, json.dumps(config_overrides, sort_keys=True))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self.session(access).client(
                    service,
                    endpoint_url=self.settings.endpoint_url,
                    config=self.settings.botocore_config(**config_overrides),
                )
                self._clients[key] = client
        return client

    def verify(self, access: AccountAccess) -> None:
        """Make sure the credentials land in the configured account before anything is changed there.

        An assumed role's ARN names its account, so only profiles and the operator's own credentials
        need the extra STS call (once per process).
        """
        if access.role_arn or access.account_id in self._verified:
            return
        actual = self.client(access, "sts").get_caller_identity()["Account"]
        if actual != access.account_id:
            source = f"profile {access.profile!r}" if access.profile else "the operator's credentials"
            raise AccountAccessError(
                f"{source} reach account {actual}, but the configuration says {access.account_id}"
            )
        with self._lock:
            self._verified.add(access.account_id)

    def _count_call(self, model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}:{model.name}"
        with self._calls_lock:
            self.calls[name] = self.calls.get(name, 0) + 1
        self._thread_calls.count = self.calls_in_this_thread() + 1

    def calls_in_this_thread(self) -> int:
        """API calls made by the current thread: a lab's own count while one worker audits it."""
        return int(getattr(self._thread_calls, "count", 0))

    def total_calls(self) -> int:
        with self._calls_lock:
            return sum(self.calls.values())
