"""The auditor's own process settings (auditor/common/process.py), made by the CLI."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.aws.emulator import start_emulator, stop_emulator
from auditor.cli.main import main
from auditor.common.process import ONE_CPU_SETTING, YOUNG_COLLECTION_EVERY
from conftest import ALLOWED_CPUS as ALLOWED
from conftest import several_cpus

# The CPUs of a command's main thread, and of a thread it starts afterwards.
CPUS_OF_THREADS = """
import json, os, threading
from auditor.common.process import tune_process
tune_process()
seen = {}
worker = threading.Thread(target=lambda: seen.update(worker=sorted(os.sched_getaffinity(0))))
worker.start(); worker.join()
print(json.dumps({"main": sorted(os.sched_getaffinity(0)), **seen}))
"""


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
    crash = (
        "from auditor.common.process import tune_process; tune_process(); import ctypes; ctypes.string_at(0)"
    )
    crashed = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=60)
    assert crashed.returncode < 0
    assert "Fatal Python error: Segmentation fault" in crashed.stderr
    assert "Current thread" in crashed.stderr and "<string>" in crashed.stderr


def cpus_of_threads(**environment: str) -> dict[str, list[int]]:
    env = {key: value for key, value in os.environ.items() if key != ONE_CPU_SETTING}
    ran = subprocess.run(
        [sys.executable, "-c", CPUS_OF_THREADS], env={**env, **environment}, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


@several_cpus
def test_a_command_keeps_its_threads_on_one_of_the_cpus_it_may_use() -> None:
    cpus = cpus_of_threads()
    assert len(cpus["main"]) == 1 and set(cpus["main"]) <= ALLOWED
    assert cpus["worker"] == cpus["main"]  # started afterwards: on the same CPU


@several_cpus
def test_the_setting_at_0_leaves_a_command_on_every_cpu() -> None:
    assert cpus_of_threads(**{ONE_CPU_SETTING: "0"}) == {"main": sorted(ALLOWED), "worker": sorted(ALLOWED)}


@pytest.mark.slow
@several_cpus
@pytest.mark.usefixtures("kept_to_one_cpu")
def test_the_emulator_started_by_a_command_runs_on_every_cpu(tmp_path: Path) -> None:
    state = tmp_path / "emulator.json"
    emulator, started = start_emulator(state)
    try:
        assert started
        with open(f"/proc/{emulator.pid}/status", encoding="ascii") as status:
            allowed = next(line for line in status if line.startswith("Cpus_allowed_list:"))
        assert _cpu_list(allowed.split(":")[1].strip()) == ALLOWED
    finally:
        stop_emulator(state)


def _cpu_list(text: str) -> frozenset[int]:
    """The kernel's list of CPUs: "0-3,6"."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)
