"""The progress bar on stderr, when it is a terminal (rich).

Batches done of the exact total (the input is read and counted first), rows
and rows/s, requests in flight, retries, failed batches, elapsed time and
ETA. The client reports progress after every batch; requests in flight are
counted from the IDs it has taken from the input (it reads lazily, a batch
at a time), less the batches it has finished.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from organik_async import Progress as ClientProgress

from ._inputs import IdColumn

__all__ = ["Bar"]


class Bar:
    """A rich progress bar fed by the client's ``on_progress`` callback."""

    def __init__(
        self,
        console: Console,
        *,
        enabled: bool,
        total: int,
        columns: Mapping[str, IdColumn],
        batch_sizes: Mapping[str, int],
    ) -> None:
        self.enabled = enabled
        self._columns = columns
        self._sizes = batch_sizes
        self._started = time.perf_counter()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]fetching"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("batches"),
                TextColumn("{task.fields[rows]} rows"),
                TextColumn("{task.fields[rate]} rows/s"),
                TextColumn("{task.fields[flight]} in flight"),
                TextColumn("{task.fields[retries]} retries"),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                refresh_per_second=8,
                redirect_stdout=False,  # rows may be going to stdout
                redirect_stderr=False,
            )
            self._task = self._progress.add_task(
                "fetch", total=total, rows="0", rate="0", flight=0, retries=0, failed=0
            )

    def start(self) -> None:
        if self._progress is not None:
            self._started = time.perf_counter()
            self._progress.start()

    def in_flight(self, done: int) -> int:
        """Batches taken from the input and not finished yet."""
        taken = sum(
            math.ceil(column.pulled / self._sizes[kind]) for kind, column in self._columns.items()
        )
        return max(0, taken - done)

    def update(self, progress: ClientProgress) -> None:
        if self._progress is None or self._task is None:
            return
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(
            self._task,
            completed=progress.batches_done,
            rows=f"{progress.rows:,}",
            rate=f"{progress.rows / elapsed:,.0f}",
            flight=self.in_flight(progress.batches_done),
            retries=f"{progress.retries:,}",
            failed=f"{progress.failures:,}",
        )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
