"""A deterministic zip of `lambda_src/`: the same source always gives the same CodeSha256."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import zipfile
from pathlib import Path

import lambda_src

SOURCE_DIR = Path(lambda_src.__file__).resolve().parent
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's epoch: no build time leaks into the archive


def _source_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def build_zip(root: Path = SOURCE_DIR) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in _source_files(root):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED  # zlib versions differ; stored bytes do not
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def code_sha256(archive: bytes) -> str:
    """The digest as Lambda reports it: base64 of the SHA-256 of the zip."""
    return base64.b64encode(hashlib.sha256(archive).digest()).decode("ascii")


@functools.cache
def packaged() -> tuple[bytes, str]:
    archive = build_zip()
    return archive, code_sha256(archive)
