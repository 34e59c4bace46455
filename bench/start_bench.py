"""Issue 25's quick commands: each command's start, as CPU to its first line, against a bare Python.

    python -m bench.start_bench [--runs 7] [--labs 200] [--skip-audit] [--no-before]

Each command is a fresh process (`python -m auditor ...`), run `--runs` times, the commands taking
turns so that the machine's changes of speed fall on all of them; the figure is the median of the
child's CPU (user + system, from `os.wait4`) until its first line of output, when the child is
stopped, or until it exits if it prints nothing (the bare `python -c pass`). Every figure is also
printed as a ratio to the bare Python of the same run:

- `--help`, and `audit --help`, `grade --help`, `report --help`;
- `status` of the sample classroom (config.toml) on an empty SQLite database in a temporary folder
  (migrated once before, as a class's database is after its first command; the audit's too);
- a fresh `audit` of a class of `--labs` pairs (issue 15's 200 by default; the sample's settings) on
  a moto server of its own, until its first lab starts (the child stops where the audit collects its
  first lab: the imports, the configuration, the database, the class's labs registered and their
  leases taken, the accounts' sessions; `--skip-audit` leaves it out).

"before" is the tree before issue 25's lazy imports (BEFORE_REF, exported from git), run in the same
run, the two trees taking turns; `--no-before` leaves it out (it needs the commit in this clone).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = ROOT / "config.toml"
# The tree before issue 25's lazy imports.
BEFORE_REF = "dbd8f36416698d9076db1299f9485eb9c9650c7d"
# The aim of issue 25: `--help` and `status` within a few tenths of a second of CPU.
AIM_SECONDS = 0.3
BARE = "bare python (-c pass)"
AUDIT = "audit (to its first lab)"

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
    """One command to start: its arguments after `python`, the folder it runs in, its environment."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]
    first_line: str | None = None  # what its first line must be, when it must be something


def child_cpu_to_first_line(start: Start) -> float:
    """CPU seconds (user + system) of a fresh child until its first line of output, or its exit."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty child never blocks on it
        process = subprocess.Popen(
            [sys.executable, *start.argv], cwd=start.cwd, env=start.env, stdout=subprocess.PIPE, stderr=errors
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


def child_environment(tree: Path, config: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUDITOR_")}
    env.update(
        {
            "PYTHONPATH": str(tree),
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


def sample_config(folder: Path, endpoint_url: str = "embedded", labs: int | None = None) -> Path:
    """The shipped config.toml in `folder` (its database beside it), on `endpoint_url`; with `labs`,
    a class of that many pairs instead of the sample's labs."""
    folder.mkdir(parents=True, exist_ok=True)
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('endpoint_url = "embedded"', f'endpoint_url = "{endpoint_url}"')
    if labs is not None:
        text = text.split("[[labs]]", 1)[0] + "".join(map(pair_toml, range(1, labs + 1)))
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def pair_toml(number: int) -> str:
    def access(account: str) -> str:
        return f'{{ account_id = "{account}", role_arn = "arn:aws:iam::{account}:role/OrganizationAccountAccessRole" }}'

    origin, destination = f"1{number:011d}", f"2{number:011d}"
    return f'[[labs]]\nname = "pair-{number:03d}"\norigin = {access(origin)}\ndestination = {access(destination)}\n\n'


def migrated(env: dict[str, str]) -> dict[str, str]:
    """The configuration's database migrated, as after a class's first command."""
    upgrade = [sys.executable, "-m", "auditor", "db", "upgrade"]
    subprocess.run(upgrade, env=env, check=True, capture_output=True)
    return env


def exported_before(into: Path) -> Path | None:
    """The tree at BEFORE_REF, or None when this clone does not have that commit."""
    archive = subprocess.run(
        ["git", "archive", BEFORE_REF, "auditor", "provisioner", "lambda_src", "migrations"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        return None
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def starts_of(label: str, tree: Path, folder: Path, moto_url: str | None, labs: int) -> list[Start]:
    """The commands of one tree, each named `label: command`, in folders of their own under `folder`."""
    status_env = migrated(child_environment(tree, sample_config(folder / "status")))
    command = ("-m", "auditor")
    starts = [
        Start(f"{label}: --help", (*command, "--help"), folder, status_env),
        Start(f"{label}: status", (*command, "status"), folder / "status", status_env),
        *(
            Start(f"{label}: {name} --help", (*command, name, "--help"), folder, status_env)
            for name in ("audit", "grade", "report")
        ),
    ]
    if moto_url is not None:
        audit_env = migrated(child_environment(tree, sample_config(folder / "audit", moto_url, labs)))
        starts.append(
            Start(f"{label}: {AUDIT}", ("-c", _AUDIT_TO_FIRST_LAB), folder / "audit", audit_env, "first lab")
        )
    return starts


@contextmanager
def moto(needed: bool) -> Iterator[str | None]:
    """A moto server of its own for the audits (started and stopped here), if they are measured."""
    if not needed:
        yield None
        return
    from bench.common import moto_server

    with moto_server() as url:
        yield url


def measured(starts: Sequence[Start], runs: int) -> dict[str, list[float]]:
    """Every command `runs` times, taking turns; each command's CPU seconds in run order."""
    figures: dict[str, list[float]] = {start.name: [] for start in starts}
    for _ in range(runs):
        for start in starts:
            figures[start.name].append(child_cpu_to_first_line(start))
    return figures


def report(figures: dict[str, list[float]], labels: Sequence[str]) -> None:
    base = statistics.median(figures[BARE])
    print(
        f"{BARE}: {base * 1000:.0f} ms ({min(figures[BARE]) * 1000:.0f} to {max(figures[BARE]) * 1000:.0f})"
    )
    header = "".join(f" {label + ' (x bare)':>24}" for label in labels)
    print(f"{'command':<26}{header}{'  after/before' if len(labels) == 2 else ''}")
    commands = [name.split(": ", 1)[1] for name in figures if name.startswith(f"{labels[0]}: ")]
    for command in commands:
        medians = [statistics.median(figures[f"{label}: {command}"]) for label in labels]
        cells = "".join(f" {f'{median * 1000:.0f} ms ({median / base:.1f}x)':>24}" for median in medians)
        ratio = f"  {medians[0] / medians[1]:.2f}x" if len(medians) == 2 else ""
        print(f"{command:<26}{cells}{ratio}")
    for command in ("--help", "status"):
        median = statistics.median(figures[f"{labels[0]}: {command}"])
        met = "met" if median <= AIM_SECONDS else "missed"
        print(f"aim: {command} within {AIM_SECONDS:.1f} s of CPU: {median:.2f} s, {met}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--labs", type=int, default=200, help="The audited class's pairs.")
    parser.add_argument("--skip-audit", action="store_true", help="Leave out the fresh audit's start.")
    parser.add_argument("--no-before", action="store_true", help=f"Leave out the tree at {BEFORE_REF[:7]}.")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="start-bench-")))
        trees = {"after": ROOT}
        before = None if args.no_before else exported_before(folder / "before-tree")
        if before is not None:
            trees["before"] = before
        elif not args.no_before:
            print(f"the tree before ({BEFORE_REF[:7]}) is not in this clone: this tree alone")
        moto_url = stack.enter_context(moto(not args.skip_audit))
        starts = [Start(BARE, ("-c", "pass"), folder, dict(os.environ))]
        by_tree = [
            starts_of(label, tree, folder / label, moto_url, args.labs) for label, tree in trees.items()
        ]
        starts += [start for turn in zip(*by_tree, strict=True) for start in turn]  # the trees take turns
        figures = measured(starts, args.runs)
    print(
        f"each command's start, CPU to its first line, median of {args.runs} runs; the audit of {args.labs} labs"
    )
    report(figures, list(trees))
    return 0


if __name__ == "__main__":
    sys.exit(main())
