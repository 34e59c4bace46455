"""A run over many labs as a rich progress bar on standard error, when it is a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from auditor.app.fleet import Progress as ShowsProgress
from auditor.app.fleet import no_progress


def terminal_progress() -> ShowsProgress:
    """A bar on a terminal; nothing otherwise (the log lines tell the story)."""
    return progress_bar if sys.stderr.isatty() else no_progress


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[str], None]]:
    from rich.console import Console  # only on a terminal
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    progress.start()
    task = progress.add_task(label, total=total)
    try:
        yield lambda _name: progress.advance(task)
    finally:
        progress.stop()
