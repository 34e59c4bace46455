"""The accounts module as it was before issue 15's cheap clients (exported from git), for the
benchmarks' before/after in one run: a botocore session per account, an STS client per credential
fetch, every client kept, one lab's requests one after another."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import auditor.app.context
import auditor.aws.accounts

BEFORE_REF = "f5eb181"  # main before the cheap clients
_MOVED = {"auditor.config": "auditor.domain.config", "auditor.errors": "auditor.common.errors"}
T = TypeVar("T")
R = TypeVar("R")


def _exported() -> Any:
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{BEFORE_REF}:auditor/accounts.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for before, now in _MOVED.items():  # the names it imports, from where they live since the layers
        source = source.replace(f"from {before} import", f"from {now} import")
    path = Path(tempfile.mkdtemp(prefix="legacy-accounts-")) / "legacy_accounts_source.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("legacy_accounts_source", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def use_legacy_sessions() -> None:
    """From now on, `open_context` makes the old AccountSessions (with the methods the code now calls)."""
    old = _exported()

    class LegacySessions(old.AccountSessions):  # type: ignore[misc, name-defined]
        def each(self, job: Callable[[T], R], items: Sequence[T]) -> list[R]:
            return [job(item) for item in items]

        def close(self) -> None:
            pass

    auditor.app.context.AccountSessions = LegacySessions  # type: ignore[misc]
    auditor.aws.accounts.AccountSessions = LegacySessions  # type: ignore[misc]
