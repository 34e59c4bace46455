"""Access to many AWS accounts: one botocore client per service for all of them, each account's
requests signed with its own credentials.

Making clients is what an audit of many accounts cost (issue 15): about 7 ms of CPU and 130 to 400
KB a botocore client, ten a lab. Here one botocore session makes one client per service (and region,
and settings), shared by every account; an account's client is a view of it (a copy of its
attributes, no botocore work) whose requests are signed with the account's credentials, which
botocore's signer takes from the request's signing context. A request outside any account's view is
refused, never signed with another account's credentials. Each account has only its credentials:
assumed roles through the operator's STS client, refreshed by botocore (a daemon outlives the one-hour
session limit). The views of the least recently used accounts go past a bound (their credentials
stay); clients with the same connection settings share one HTTP connection pool. Credentials are never
logged nor stored anywhere but in memory.

What the accounts now share: a service's retry quota (botocore's standard mode, 500 units, 5 a
retry, one back a success): throttling in many accounts at once leaves fewer retries for each. So
within a lab's audit, a call that AWS still throttles or fails past botocore's attempts is retried
within the lab's own budget (auditor/domain/faults.py), and past that is an AwsFault naming the call and
the fault; every retry is counted (`retries`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, NoCredentialsError
from botocore.httpsession import URLLib3Session
from botocore.loaders import Loader, create_loader
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from auditor.aws.curl_http import curl_session_for, proxies_of
from auditor.common.errors import LabFault
from auditor.common.lru import LruCache
from auditor.domain.config import AccountAccess, AwsSettings, unvalidated
from auditor.domain.faults import RetryCounts, call_within_budget, observe_attempt

SESSION_NAME = "lab-auditor"
RETRY_MODE = "standard"
# Accounts whose clients the daemon keeps (an account's five views cost about 6 KB and at most 0.4 ms
# of CPU to make, bench/clients_bench.py): a class of 2,048 pairs keeps all of them in about 25 MB;
# past that, the least recently used accounts' views are made again when needed (their credentials
# stay).
CACHED_ACCOUNTS = 4096


def accounts_for_one_pass(concurrency: int) -> int:
    """A command that goes over the class once needs only the clients of the labs under way."""
    return max(64, 4 * concurrency)


# The operator's own credentials (no role assumed), e.g. for the change-event queue.
OPERATOR = unvalidated(AccountAccess, account_id="operator")

T = TypeVar("T")
R = TypeVar("R")


# How an operator supplies credentials (docs/real-class.md, "The operator's credentials").
HOW_TO_SUPPLY_CREDENTIALS = (
    "sign in with aws sso login --profile NAME and export AWS_PROFILE=NAME, or export "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run on an instance or container with a role"
)


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
    cached_accounts: int = CACHED_ACCOUNTS  # see accounts_for_one_pass
    # Threads that issue one lab's independent requests at once, shared by every lab (0: one at a time).
    request_workers: int = 0
    # Clients with equal connection settings share one pool of connections (see _shared_http).
    share_connections: bool = True

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
    **options: Any,
) -> ClientSettings:
    # Every worker's labs, and each lab's requests at once, share the pools (one per endpoint).
    return ClientSettings(
        endpoint_url=endpoint_url,
        region=region,
        max_attempts=aws.max_attempts,
        max_pool_connections=max(10, concurrency * 4),
        connect_timeout=aws.connect_timeout,
        read_timeout=aws.read_timeout,
        fake_credentials=fake_credentials,
        **{"request_workers": request_workers_for(concurrency), **options},
    )


# Threads waiting for answers, audit workers and request workers together. Each thread costs CPU in
# handing the interpreter's lock around; with the threads kept to one CPU (auditor.common.process) and libcurl
# that cost fell enough for more requests in flight to pay: a fresh audit of 200 labs at concurrency 64,
# answers replayed at 100 ms, took 1.65x to 1.79x its ideal with 48 threads (no request workers: each
# lab's 13 requests one after another, the class's last 8 labs alone for 1.4 s) and 1.24x to 1.31x with
# 128, for the same CPU (bench/clients_bench.py, three runs each, December 2026).
THREADS = 128


def request_workers_for(concurrency: int) -> int:
    """A lab has a few independent reads at a time (two roles, the function, the bucket...); they go
    out at once while the labs at once leave room for them under THREADS."""
    return max(0, min(2 * concurrency, THREADS - concurrency))


# ----------------------------------------------------------------------------------------- pure parts


def client_key(service: str, config_overrides: Mapping[str, Any]) -> tuple[str, str]:
    return service, json.dumps(config_overrides, sort_keys=True)


# ---------------------------------------------------------------------------------------- the session

# What botocore makes on first use of a session; made here, once, before threads share the session.
_LAZY_COMPONENTS = ("endpoint_resolver", "default_config_resolver", "smart_defaults_factory", "monitor")


def _resolve_lazy_components(session: botocore.session.Session) -> None:
    """botocore documents sessions as unsafe to share between threads: its known races are components
    made on first use by two threads at once (KeyError 'endpoint_resolver', boto3#801). They are made
    before any thread creates a client; the rest of create_client reads them."""
    for name in _LAZY_COMPONENTS:
        session._get_internal_component(name)  # no public way to resolve an internal component
    session.register_component("data_loader", _shared_loader(session.get_config_variable("data_path")))
    # As the AWS CLI sets its own: the clients' parsers are made with the factory's defaults.
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)


@functools.cache
def _shared_loader(data_path: str | None) -> Loader:
    """A session makes a loader of its own, and a loader reads each service's model (megabytes of JSON)
    the first time a client of the service is made: a loader for the process, as boto3's default
    session is, reads each once however many sessions are made (a command makes one, the daemon one a
    cycle and the tests hundreds). Its cache only ever adds a file's parsed contents, which botocore
    never changes."""
    return create_loader(data_path)


def parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, with the answers' usual ISO 8601 form parsed by the standard library
    (botocore's goes through dateutil: a twentieth of a request's CPU). Anything else, or an ISO time
    without its zone, goes to botocore's, which decides as it always has."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return parsed
    return botocore_parse_timestamp(value)


# True while a shared client is made in this thread.
_MAKING_SHARED: contextvars.ContextVar[bool] = contextvars.ContextVar("making_shared", default=False)


class _SharedSession(botocore.session.Session):
    """One botocore session for every account. `create_client` takes the session's credentials from
    `get_credentials()`; a shared client made in this thread gets no account's (`_NoAccount`), without
    a lock around the making; otherwise they are the operator's."""

    def get_credentials(self) -> Any:
        return _NoAccount() if _MAKING_SHARED.get() else super().get_credentials()


@dataclass(frozen=True)
class _Caller:
    """The account on whose behalf the current thread is making a request, and its credentials."""

    key: tuple[Any, ...]
    credentials: Any


# Set by an account's client for the length of each of its requests (botocore makes a request, signs
# and retries it in the calling thread).
_CALLING_AS: contextvars.ContextVar[_Caller | None] = contextvars.ContextVar("calling_as", default=None)


_OUTSIDE_ANY_ACCOUNT = "a request was made outside any account's client"


class _NoAccount:
    """The credentials of the clients shared by every account: a request that reached the signer
    without an account's credentials is refused, never signed with another account's."""

    def get_frozen_credentials(self) -> Any:
        raise AccountAccessError(_OUTSIDE_ANY_ACCOUNT)

    def get_deferred_property(self, _name: str) -> Callable[[], None]:
        # No account ID for endpoint rules (only DynamoDB's read it; the auditor reaches none).
        return lambda: None


def _sign_as_the_caller(request: Any, **_: Any) -> None:
    """before-sign: the request is signed with the calling account's credentials (botocore's signer
    takes them from the request's signing context, as it does for S3 Express)."""
    caller = _CALLING_AS.get()
    if caller is None:
        raise AccountAccessError(_OUTSIDE_ANY_ACCOUNT)
    if caller.credentials is None:
        raise NoCredentialsError()
    request.context.setdefault("signing", {})["request_credentials"] = caller.credentials


def _account_view(shared: Any, caller: _Caller, retries: RetryCounts) -> Any:
    """The shared client as one account's: the same object's state (its methods, paginators, waiters,
    endpoint and event handlers), with every request made as `caller`, within the lab's budget of
    retries when there is one. Costs a dictionary copy."""
    view = object.__new__(type(shared))
    view.__dict__.update(shared.__dict__)
    make_api_call = shared._make_api_call  # paginators and waiters reach it through the view's methods
    service_model = shared.meta.service_model
    service = service_model.service_name
    account = caller.key[0] if caller.key else ""
    where = f" in account {account}" if str(account).isdigit() else ""

    def make_api_call_as_caller(operation_name: str, api_params: Any) -> Any:
        token = _CALLING_AS.set(caller)
        try:
            return call_within_budget(
                partial(make_api_call, operation_name, api_params),
                f"{service}:{operation_name}",
                where=where,
                operation_model=partial(service_model.operation_model, operation_name),
                counts=retries,
            )
        finally:
            _CALLING_AS.reset(token)

    view._make_api_call = make_api_call_as_caller
    return view


def _for_account(key: tuple[Any, ...], handler: Callable[..., Any]) -> Callable[..., Any]:
    """An event handler on a shared client that runs only for the requests of one account."""

    def handle(**kwargs: Any) -> Any:
        caller = _CALLING_AS.get()
        return handler(**kwargs) if caller is not None and caller.key == key else None

    return handle


@dataclass
class _AccountClients:
    """One account's clients (views of the shared ones), by (service, config overrides)."""

    credentials: Any
    clients: dict[tuple[str, str], Any]


@dataclass
class _SharedClient:
    """A client shared by every account, made once under its own lock."""

    lock: threading.Lock
    client: Any = None


class _CallCount:
    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.value += 1


class AccountSessions:
    """Credentials and clients per account, safe to use from many threads.

    Also counts the API calls made, by service and operation, for the benchmarks and the request
    budget test; and runs one lab's independent requests at once (`each`).
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._root = _SharedSession()
        # boto3's own handlers (e.g. S3's transfer methods) on the shared session, for every client.
        boto3.Session(botocore_session=self._root, region_name=settings.region)
        self._root.register("before-call", self._count_call)
        self._root.register("needs-retry", self._observe_attempt)
        _resolve_lazy_components(self._root)
        if settings.fake_credentials:
            fake = settings.fake_credentials
            self._root.set_credentials(
                fake["AWS_ACCESS_KEY_ID"], fake["AWS_SECRET_ACCESS_KEY"], fake.get("AWS_SESSION_TOKEN")
            )
        self._lock = threading.Lock()  # the maps below; never held while making or fetching anything
        self._accounts: LruCache[tuple[Any, ...], _AccountClients] = LruCache(settings.cached_accounts)
        self._credentials: dict[tuple[Any, ...], Any] = {}
        self._shared: dict[tuple[str, str], _SharedClient] = {}
        self._hooks: list[tuple[str, Callable[..., Any], bool]] = []  # handlers for one account each
        self._http: dict[str, URLLib3Session] = {}
        self._operator_lock = threading.Lock()  # the operator's credentials, resolved once
        self._requests: ThreadPoolExecutor | None = None
        self._closed = False
        self._verified: set[str] = set()
        self.clients_made = 0
        self.calls: dict[str, int] = {}
        self._calls_lock = threading.Lock()
        self.retries = (
            RetryCounts()
        )  # botocore's, the labs' own and the function's runs' (auditor/domain/faults.py)
        # A lab's own count follows its requests onto the request workers (they run in a copy of its
        # context); a thread has its own, as each thread starts with a context of its own.
        self._thread_calls: contextvars.ContextVar[_CallCount | None] = contextvars.ContextVar(
            f"calls-{id(self)}", default=None
        )

    # -------------------------------------------------------------------------------- credentials

    def credentials(self, access: AccountAccess) -> Any:
        """The account's credentials (assumed roles: refreshable, fetched on first use), made once."""
        with self._lock:
            known = self._credentials.get(access.key)
        if known is not None:
            return known
        made = self._new_credentials(access)
        with self._lock:
            return self._credentials.setdefault(access.key, made)

    def _new_credentials(self, access: AccountAccess) -> Any:
        if access.role_arn:
            return self._assumed_role_credentials(access)
        if access.profile:
            return botocore.session.Session(profile=access.profile).get_credentials()
        return self._operator_credentials()

    def _operator_credentials(self) -> Any:
        with self._operator_lock:  # botocore resolves them once, lazily; not from two threads at once
            return self._root.get_credentials()

    def missing_credentials(self, accesses: Iterable[AccountAccess]) -> str | None:
        """Why the operator's credentials, which these accounts are reached with (a role is assumed with
        them; only an account of a profile of its own, with no role, needs none), cannot be had: none
        anywhere, or a profile botocore cannot read; None when they are there or no account needs
        them. Nothing is signed or sent."""
        if all(access.profile and not access.role_arn for access in accesses):
            return None
        try:
            found = self._operator_credentials()
        except BotoCoreError as error:  # AWS_PROFILE naming a profile that is not there, a broken file
            return f"the operator's AWS credentials cannot be read: {error}"
        if found is None:
            return "no AWS credentials found for the operator (none in the environment, no profile, no instance or container role)"
        return None

    def _assumed_role_credentials(self, access: AccountAccess) -> DeferredRefreshableCredentials:
        source_credentials = self._operator_credentials()
        if source_credentials is None:
            raise AccountAccessError(f"no AWS credentials of the operator's to assume {access.role_arn} with")
        extra_args: dict[str, Any] = {"RoleSessionName": SESSION_NAME}
        if access.external_id:
            extra_args["ExternalId"] = access.external_id
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=self._sts_for_fetcher,
            source_credentials=source_credentials,
            role_arn=access.role_arn,
            extra_args=extra_args,
        )
        return DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)

    def _sts_for_fetcher(self, service_name: str, **_frozen_source_credentials: Any) -> Any:
        """Every fetch asks for a new STS client from the operator's frozen credentials; the operator's
        client, on those same credentials (refreshed by botocore if they are), answers them all."""
        return self.client(OPERATOR, service_name)

    # -------------------------------------------------------------------------------- clients

    def client(self, access: AccountAccess, service: str, **config_overrides: Any) -> Any:
        """The account's client: a view of the client shared by every account, whose requests are
        signed with this account's credentials. boto3 clients are thread-safe once created."""
        account = self._account(access)
        key = client_key(service, config_overrides)
        made = account.clients.get(key)
        if made is None:
            shared = self._shared_client(key, service, config_overrides)
            made = account.clients.setdefault(
                key, _account_view(shared, _Caller(access.key, account.credentials), self.retries)
            )
        return made

    def _account(self, access: AccountAccess) -> _AccountClients:
        credentials = self.credentials(access)  # made once, kept past the views' bound
        with self._lock:
            account = self._accounts.get(access.key)
            if account is None:
                account = _AccountClients(credentials, {})
                self._accounts.put(access.key, account)  # the evicted ones' views are dropped with them
            return account

    def _shared_client(self, key: tuple[str, str], service: str, config_overrides: Mapping[str, Any]) -> Any:
        shared = self._shared.get(key)  # without the lock once made: every request of every lab asks
        if shared is None:
            with self._lock:
                shared = self._shared.setdefault(key, _SharedClient(threading.Lock()))
        if shared.client is None:
            with shared.lock:  # made once; other services' clients meanwhile
                if shared.client is None:
                    made = self._make_shared_client(service, config_overrides)
                    with self._lock:  # published with every hook so far (see `hook`)
                        for event, handler, first in self._hooks:
                            _register(made, event, handler, first)
                        shared.client = made
        return shared.client

    def _make_shared_client(self, service: str, config_overrides: Mapping[str, Any]) -> Any:
        token = _MAKING_SHARED.set(True)
        try:
            made = self._root.create_client(
                service,
                endpoint_url=self.settings.endpoint_url,
                config=self.settings.botocore_config(**config_overrides),
            )
        finally:
            _MAKING_SHARED.reset(token)
        made.meta.events.register("before-sign", _sign_as_the_caller)
        made.exceptions  # noqa: B018 -- made now, once, and shared by the views
        if self.settings.share_connections:
            self._share_connections(made)
        with self._lock:
            self.clients_made += 1
        return made

    def _share_connections(self, made: Any) -> None:
        """botocore gives each client a pool of its own and has no option to share one; the endpoint's
        `http_session` is replaced by one shared by the clients with the same connection settings: libcurl's
        (auditor/aws/curl_http.py) where it does what botocore's would, else botocore's (urllib3 keeps a pool
        per host inside it, and is thread-safe)."""
        config = made.meta.config
        endpoint = made._endpoint  # no public way to hand botocore an HTTP session
        own = endpoint.http_session
        settings = json.dumps(
            [
                config.connect_timeout,
                config.read_timeout,
                config.max_pool_connections,
                config.proxies,
                proxies_of(own),  # the environment's too
                config.proxies_config,
                config.client_cert,
                config.tcp_keepalive,
            ],
            sort_keys=True,
            default=str,
        )
        with self._lock:
            shared = self._http.get(settings)
            if shared is None:
                shared = self._http[settings] = curl_session_for(own, config) or own
        endpoint.http_session = shared

    def hook(
        self, access: AccountAccess, event: str, handler: Callable[..., Any], *, first: bool = False
    ) -> None:
        """Register a botocore event handler for the account's requests, through its clients made and
        to come (on the shared clients, where it runs for this account's requests only)."""
        hook = (event, _for_account(access.key, handler), first)
        with self._lock:
            self._hooks.append(hook)
            for shared in self._shared.values():
                if shared.client is not None:
                    _register(shared.client, *hook)

    def cached_accounts(self) -> int:
        with self._lock:
            return len(self._accounts)

    def connection_pools(self) -> int:
        """HTTP sessions in use by the clients (one per connection settings when they are shared)."""
        with self._lock:
            return len(self._http)

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

    # -------------------------------------------------------------------------------- requests at once

    def each(self, job: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`job` of every item, in order, the items' requests at once on the shared request workers.

        The calling thread does the first item itself. A job already on a request worker runs its
        items one after another: a worker never waits for the pool it is part of (no deadlock when
        every worker is busy). The first failing item (in order) raises, after all have finished.
        """
        pool = self._request_pool()
        if pool is None or len(items) < 2 or _ON_REQUEST_WORKER.get():
            return [job(item) for item in items]
        self._this_thread_count()  # made before the workers copy the context: they count into it
        later = [(_submitted(pool, job, item), item) for item in items[1:]]
        outcomes = [_outcome(partial(job, items[0]))]
        # An item the pool refused (closed meanwhile) runs here.
        outcomes += [_outcome(future.result if future else partial(job, item)) for future, item in later]
        for _, error in outcomes:
            if error is not None:
                raise error
        return [value for value, _ in outcomes]  # type: ignore[misc]

    def _request_pool(self) -> ThreadPoolExecutor | None:
        with self._lock:
            if self._requests is None and self.settings.request_workers > 0 and not self._closed:
                self._requests = ThreadPoolExecutor(
                    max_workers=self.settings.request_workers, thread_name_prefix="requests"
                )
            return self._requests

    def close(self) -> None:
        """Stop the request workers (after the requests under way); later `each` run their items here."""
        with self._lock:
            pool, self._requests, self._closed = self._requests, None, True
        if pool is not None:
            pool.shutdown(wait=True)

    # -------------------------------------------------------------------------------- counting

    def _count_call(self, model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}:{model.name}"
        with self._calls_lock:
            self.calls[name] = self.calls.get(name, 0) + 1
        self._this_thread_count().add()

    def _observe_attempt(self, attempts: int, **details: Any) -> None:
        """After every attempt (botocore's `needs-retry`): a later attempt is one of botocore's retries;
        a failed one goes to its call's tally (auditor/domain/faults.py)."""
        if attempts > 1:
            self.retries.add("botocore")
        observe_attempt(attempts, **details)

    def _this_thread_count(self) -> _CallCount:
        count = self._thread_calls.get()
        if count is None:
            count = _CallCount()
            self._thread_calls.set(count)
        return count

    def calls_in_this_thread(self) -> int:
        """API calls made by the current thread, and for it by the request workers: a lab's own count
        while one worker audits it."""
        return self._this_thread_count().value

    def total_calls(self) -> int:
        with self._calls_lock:
            return sum(self.calls.values())


_ON_REQUEST_WORKER: contextvars.ContextVar[bool] = contextvars.ContextVar("on_request_worker", default=False)


def _as_request_worker(job: Callable[[T], R], item: T) -> R:
    _ON_REQUEST_WORKER.set(True)  # in this task's own copy of the caller's context
    return job(item)


def _submitted(pool: ThreadPoolExecutor, job: Callable[[T], R], item: T) -> Future[R] | None:
    try:
        return pool.submit(contextvars.copy_context().run, _as_request_worker, job, item)
    except RuntimeError:  # the pool was shut down
        return None


def _outcome(call: Callable[[], R]) -> tuple[R | None, BaseException | None]:
    try:
        return call(), None
    except BaseException as error:  # raised by `each` once every item is done
        return None, error


def _register(client: Any, event: str, handler: Callable[..., Any], first: bool) -> None:
    if first:
        client.meta.events.register_first(event, handler)
    else:
        client.meta.events.register(event, handler)
