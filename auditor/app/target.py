"""One lab as the program works on it: its configuration, its rendered spec, and how its accounts are reached."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from auditor.aws.accounts import AccountSessions
from auditor.domain.config import AccountAccess, LabConfig
from auditor.domain.spec import ExpectedLab

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class LabTarget:
    """One lab, its rendered spec and how to reach its two accounts."""

    lab: LabConfig
    expected: ExpectedLab

    @property
    def name(self) -> str:
        return self.lab.name

    def access(self, account_id: str) -> AccountAccess:
        """Which access reaches one of the lab's accounts (a single-account lab has one)."""
        lab = self.lab
        return lab.origin if account_id == lab.origin.account_id else lab.destination


@dataclass(frozen=True)
class LabClients:
    """The clients of one lab's accounts: what the resource kinds read and change the lab through."""

    sessions: AccountSessions
    target: LabTarget

    def client(self, account_id: str, service: str, region: str | None = None) -> Any:
        access = self.target.access(account_id)
        if region is None or region == self.target.expected.region:
            return self.sessions.client(access, service)
        return self.sessions.client(access, service, region_name=region)

    def each(self, job: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return self.sessions.each(job, items)

    def verify(self) -> None:
        """The credentials land in the configured accounts, checked before anything is read or changed."""
        for access in (self.target.lab.origin, self.target.lab.destination):
            self.sessions.verify(access)
