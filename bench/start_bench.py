"""Issue 25's quick commands: each command's start, as CPU to its first line, against a bare Python.

    python -m bench.start_bench [--runs 7] [--skip-audit]

Each command is a fresh process (`python -m auditor ...`, this tree), run `--runs` times, the commands
taking turns so that the machine's changes of speed fall on all of them; the figure is the median of
the child's CPU (user + system, from `os.wait4`) until its first line of output, when the child is
stopped, or until it exits if it prints nothing (the bare `python -c pass`). Every figure is also
printed as a ratio to the bare Python of the same run:

- `--help`, and `audit --help`, `grade --help`, `report --help`;
- `status` of the sample classroom (config.toml) on an empty SQLite database in a temporary folder
  (migrated once before, as a class's database is after its first command; the audit's too);
- a fresh `audit` of the sample classroom on a moto server of its own, until its first lab starts
  (the child stops where the audit collects its first lab: the imports, the configuration, the
  database, the accounts' sessions; `--skip-audit` leaves it out).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = ROOT / "config.toml"
# The aim of issue 25: `--help` and `status` within a few tenths of a second of CPU.
AIM_SECONDS = 0.3

# Run in the child instead of `python -m auditor audit`: the command as it is, except that the first
# lab's collection ends the process, with nothing else printed before (the parent reads CPU from wait4).
_AUDIT_TO_FIRST_LAB = """
import os, sys
import auditor.app.audit as audit

def first_lab(*_args, **_kwargs):
    sys.stdout.write("first lab\\n")
    sys.stdout.flush()
    os._exit(0)

audit.collect_lab = first_lab
from auditor.cli.main import main
main(["audit", "--no-invoke", "--no-record", "--format", "json"])
"""


@dataclass(frozen=True)
class Start:
    """One command to start: its arguments after `python`, the folder it runs in."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    first_line: str | None = None  # what its first line must be, when it must be something


def child_cpu_to_first_line(start: Start, env: dict[str, str]) -> float:
    """CPU seconds (user + system) of a fresh child until its first line of output, or its exit."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty child never blocks on it
        process = subprocess.Popen(
            [sys.executable, *start.argv], cwd=start.cwd, env=env, stdout=subprocess.PIPE, stderr=errors
        )
        assert process.stdout is not None
        first = process.stdout.readline().decode(errors="replace")
        if first:
            process.send_signal(signal.SIGKILL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        process.stdout.close()
        errors.seek(0)
        said = errors.read().decode(errors="replace")[-2000:]
    if not first and process.returncode != 0:
        raise RuntimeError(f"{start.name} printed nothing and exited {process.returncode}: {said}")
    if start.first_line is not None and first.strip() != start.first_line:
        raise RuntimeError(f"{start.name} printed {first!r} first, not {start.first_line!r}: {said}")
    return usage.ru_utime + usage.ru_stime


def child_environment(config: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUDITOR_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "AUDITOR_CONFIG": str(config),
            "AUDITOR_CACHE_DIR": str(config.parent / "cache"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "COLUMNS": "100",
        }
    )
    return env


def sample_config(folder: Path, endpoint_url: str = "embedded") -> Path:
    """The shipped config.toml in `folder` (its database beside it), on `endpoint_url`."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('endpoint_url = "embedded"', f'endpoint_url = "{endpoint_url}"')
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def migrated(folder: Path, env: dict[str, str]) -> None:
    """The configuration's database migrated, as after a class's first command."""
    upgrade = [sys.executable, "-m", "auditor", "db", "upgrade"]
    subprocess.run(upgrade, cwd=folder, env=env, check=True, capture_output=True)


@contextmanager
def audit_start(folder: Path) -> Iterator[tuple[Start, dict[str, str]]]:
    """The fresh audit to its first lab, on a moto server of its own (started and stopped here)."""
    from bench.common import moto_server

    folder.mkdir()
    with moto_server() as url:
        env = child_environment(sample_config(folder, endpoint_url=url))
        migrated(folder, env)
        yield Start("audit (to its first lab)", ("-c", _AUDIT_TO_FIRST_LAB), folder, "first lab"), env


def medians(starts: Sequence[Start], envs: dict[str, dict[str, str]], runs: int) -> dict[str, list[float]]:
    """Every command `runs` times, taking turns; each command's CPU seconds in run order."""
    figures: dict[str, list[float]] = {start.name: [] for start in starts}
    for _ in range(runs):
        for start in starts:
            figures[start.name].append(child_cpu_to_first_line(start, envs[start.name]))
    return figures


def report(figures: dict[str, list[float]], bare: str) -> None:
    base = statistics.median(figures[bare])
    print(f"{'command':<28} {'CPU (median)':>12} {'range':>17} {'x bare python':>14}")
    for name, values in figures.items():
        median = statistics.median(values)
        spread = f"{min(values) * 1000:.0f} to {max(values) * 1000:.0f} ms"
        print(f"{name:<28} {median * 1000:>9.0f} ms {spread:>17} {median / base:>13.1f}x")
    for name in ("--help", "status"):
        median = statistics.median(figures[name])
        met = "met" if median <= AIM_SECONDS else "missed"
        print(f"aim: {name} within {AIM_SECONDS:.1f} s of CPU: {median:.2f} s, {met}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-audit", action="store_true", help="Leave out the fresh audit's start.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="start-bench-") as temporary:
        folder = Path(temporary)
        (folder / "status").mkdir()
        status_config = sample_config(folder / "status")
        env = child_environment(status_config)
        migrated(folder, env)
        command = ("-m", "auditor")
        starts = [
            Start("bare python (-c pass)", ("-c", "pass"), folder),
            Start("--help", (*command, "--help"), folder),
            Start("status", (*command, "status"), folder / "status"),
            Start("audit --help", (*command, "audit", "--help"), folder),
            Start("grade --help", (*command, "grade", "--help"), folder),
            Start("report --help", (*command, "report", "--help"), folder),
        ]
        envs = {start.name: env for start in starts}
        if args.skip_audit:
            figures = medians(starts, envs, args.runs)
        else:
            with audit_start(folder / "audit") as (audit, audit_env):
                envs[audit.name] = audit_env
                figures = medians([*starts, audit], envs, args.runs)
    print(f"each command's start, CPU to its first line, median of {args.runs} runs (this tree, {ROOT})")
    report(figures, "bare python (-c pass)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
