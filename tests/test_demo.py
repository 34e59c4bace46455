"""`make demo`, as the README's quick start runs it: the whole story, then exit 0."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import run_demo

pytestmark = pytest.mark.slow  # the demo in a process of its own


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out), out


def test_the_demo_tells_the_whole_story_and_exits_0(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    completed, _ = demo
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    story = completed.stdout
    steps = re.findall(r"^(\d)\. ", story, flags=re.MULTILINE)
    assert steps == ["1", "2", "3", "4", "5", "6", "7"]
    assert "That is the whole story" in story
    assert "unexpected" not in story


def test_the_demo_shows_each_drift_with_its_effect_and_severity(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    story = demo[0].stdout
    assert re.search(r"pair-01\s+critical\s+trust_policy\s+widened\s+trust policy lets any principal", story)
    assert re.search(
        r"pair-02\s+medium\s+inline_policy\s+narrowed\s+inline policy LambdaS3ListBucketsPolicy", story
    )
    assert re.search(r"solo-01\s+high\s+lambda_code\s+changed", story)


def test_the_demo_resets_a_lab_and_tears_everything_down(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    completed, out = demo
    story = completed.stdout
    assert "restored: create    inline_policy" in story
    assert "pair-02 is now conformant" in story
    assert story.count("nothing of the lab is left") == 3
    with sqlite3.connect(out / "demo.db") as database:
        states = dict(database.execute("select name, state from labs"))
    assert set(states.values()) == {"torn_down"}


def test_the_demo_writes_a_self_contained_report(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    completed, out = demo
    report = out / "report.html"
    assert str(report.resolve()) in completed.stdout.replace("\n", "")
    html = report.read_text(encoding="utf-8")
    assert "pair-01" in html and "solo-01" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", html)


def test_the_demo_output_is_plain_when_piped(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    assert "\x1b[" not in demo[0].stdout


def test_the_demo_mixes_no_log_lines_into_its_story(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    completed, _ = demo
    both = completed.stdout + completed.stderr  # what a terminal shows: both streams in one story
    assert not [line for line in both.splitlines() if line.lstrip().startswith('{"')], completed.stderr[
        -2000:
    ]


def test_the_demo_shows_who_broke_each_lab_and_where_the_page_is(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    story = demo[0].stdout
    assert "3 change events arrived through EventBridge and the operator's queue" in story
    for lab, who in (
        ("pair-01", "assumed-role/student/mallory"),
        ("pair-02", "assumed-role/student/bob"),
        ("solo-01", "user/carol"),
    ):
        assert re.search(rf"{lab} \w+: changed by {who} at \d\d:\d\d from [\d.]+", story), lab
    assert re.search(
        r"The daemon's live page for this class, while the demo runs: http://127\.0\.0\.1:\d+/", story
    )
    assert re.search(r"The live page shows the same: http://127\.0\.0\.1:\d+/labs/pair-01", story)


@pytest.mark.parametrize("students", [False, True], ids=["demo", "class demo"])
def test_an_out_folder_where_the_demo_cannot_start_afresh_is_a_usage_error(
    tmp_path: Path, students: bool
) -> None:
    """The old database cannot be removed (here a folder in its place; on a volume, another uid's
    folder): one line naming --out and the file, exit 2, no traceback, nothing started."""
    from click.testing import CliRunner

    from auditor.cli.main import main

    database = tmp_path / ("class.db" if students else "demo.db")
    database.mkdir()
    (database / "kept").touch()

    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), *(["--class"] if students else [])])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: --out {tmp_path}: cannot start the demo afresh there (")
    assert str(database) in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [database.name]
