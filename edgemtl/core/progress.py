"""A rich progress bar as a context manager yielding `advance(done, total)`.

Why: the evaluation loop is numpy-side and takes a plain callback; commands
choose whether a bar is shown (`--quiet`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextlib.contextmanager
def bar(
    console: Console | None, description: str, total: int
) -> Iterator[Callable[[int, int], None]]:
    console = console or Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        # Not a terminal (a log file, CI): a bar would only print blank lines at its end.
        disable=console.quiet or not console.is_terminal,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(done: int, new_total: int) -> None:
            progress.update(task, completed=done, total=new_total)

        yield advance
