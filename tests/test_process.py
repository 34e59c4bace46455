"""The auditor's own process settings (auditor/process.py), made by the CLI."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.process import YOUNG_COLLECTION_EVERY


@pytest.fixture
def gc_threshold_kept() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)


@pytest.mark.usefixtures("gc_threshold_kept")
def test_a_command_collects_young_garbage_less_often_than_the_interpreter_s_default(tmp_path: Path) -> None:
    gc.set_threshold(700, 10, 10)
    result = CliRunner().invoke(main, ["status", "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 2, result.output  # the missing file, and no error from a captured stderr
    assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, 10, 10)


@pytest.mark.slow
def test_a_crash_in_native_code_prints_the_stack_of_every_thread() -> None:
    crash = "from auditor.process import tune_process; tune_process(); import ctypes; ctypes.string_at(0)"
    crashed = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=60)
    assert crashed.returncode < 0
    assert "Fatal Python error: Segmentation fault" in crashed.stderr
    assert "Current thread" in crashed.stderr and "<string>" in crashed.stderr
