"""The progress line on stderr, when it is a terminal (rich).

One line: the bar and batches done of the exact total (the input is read and
counted first), the ETA, rows written, failed batches, elapsed time, rows/s,
retries and requests in flight. It is laid out for the terminal's width at
each refresh: from 60 columns up the bar, done/total and the ETA always
show, and the less useful fields are left out first (`FIELDS_BY_USE`).
It never takes the last two columns, so the ``^C`` a terminal echoes on
Ctrl-C cannot wrap it onto a second line (where the last frame would show
twice).

The rows are the rows written, as the summary counts them. The client
reports progress after every batch; requests in flight are counted from the
IDs it has taken from the input (it reads lazily, a batch at a time), less
the batches it has finished.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from organik_async import Progress as ClientProgress

from ._inputs import IdColumn
from ._words import Lang, word

__all__ = ["FIELDS_BY_USE", "Bar", "Frame"]

FIELDS_BY_USE: Final = (
    "eta",
    "rows",
    "failed",
    "elapsed",
    "unit",
    "rate",
    "retries",
    "flight",
    "label",
)
"""The optional fields, most useful first: the narrower the terminal, the fewer are shown.
The bar and done/total always are; ``0 failed`` is worth less than any other field."""
ORDER: Final = ("label", "bar", "done", "unit", "rows", "rate", "flight", "retries", "failed",
                "elapsed", "eta")  # fmt: skip
"""Left to right."""
BAR_WIDTH: Final = (10, 30)
"""The bar's narrowest and widest."""
ECHO_ROOM: Final = 2
"""Columns left free at the end of the line: a terminal echoes Ctrl-C as ``^C``."""


def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass
class Frame:
    """What the line shows at one moment; rendered to fit the console's width."""

    total: int
    done: int = 0
    rows: int = 0
    elapsed: float = 0.0
    flight: int = 0
    retries: int = 0
    failed: int = 0
    lang: Lang = "en"

    def fields(self) -> dict[str, Text]:
        """Every field but the bar, as it would show."""
        rate = self.rows / self.elapsed if self.elapsed > 0 else 0.0
        left = None
        if self.done >= self.total:
            left = 0.0
        elif self.done:
            left = self.elapsed / self.done * (self.total - self.done)
        failed_style = "bold red" if self.failed else ""
        return {
            "label": Text(word("fetching", self.lang), style="bold"),
            "done": Text(f"{self.done}/{self.total}", style="green"),
            "unit": Text(word("batches", self.lang)),
            "rows": Text(f"{self.rows:,} {word('rows', self.lang)}"),
            "rate": Text(f"{rate:,.0f} {word('rows/s', self.lang)}"),
            "flight": Text(f"{self.flight} {word('in flight', self.lang)}"),
            "retries": Text(f"{self.retries:,} {word('retries', self.lang)}"),
            "failed": Text(f"{self.failed:,} {word('failed', self.lang)}", style=failed_style),
            "elapsed": Text(_clock(self.elapsed), style="yellow"),
            "eta": Text.assemble(f"{word('ETA', self.lang)} ", (_clock(left), "cyan")),
        }

    def by_use(self) -> tuple[str, ...]:
        """This frame's optional fields, most useful first."""
        if self.failed:
            return FIELDS_BY_USE
        return (*(name for name in FIELDS_BY_USE if name != "failed"), "failed")

    def line(self, width: int) -> Text:
        """The line for a terminal ``width`` columns wide (at most ``width - 2`` of them)."""
        room = width - ECHO_ROOM
        fields = self.fields()
        shown = {"done", *FIELDS_BY_USE}

        def length(names: set[str], bar: int) -> int:
            return bar + sum(fields[name].cell_len + 1 for name in names)

        for name in reversed(self.by_use()):  # the least useful goes first
            if length(shown, BAR_WIDTH[0]) <= room:
                break
            shown.discard(name)
        bar = max(BAR_WIDTH[0], min(BAR_WIDTH[1], room - length(shown, 0)))
        parts = [self._bar(bar) if name == "bar" else fields[name] for name in ORDER
                 if name == "bar" or name in shown]  # fmt: skip
        line = Text(" ").join(parts)
        line.truncate(room)  # below 60 columns even the three that stay may not fit
        return line

    def _bar(self, width: int) -> Text:
        filled = width if self.done >= self.total else width * self.done // max(self.total, 1)
        style = "bar.finished" if self.done >= self.total else "bar.complete"
        return Text.assemble(("━" * filled, style), ("━" * (width - filled), "bar.back"))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.line(options.max_width)


class Bar:
    """The progress line, fed by the client's ``on_progress`` callback."""

    def __init__(
        self,
        console: Console,
        *,
        enabled: bool,
        total: int,
        columns: Mapping[str, IdColumn],
        batch_sizes: Mapping[str, int],
        rows_written: Callable[[], int] = lambda: 0,
        lang: Lang = "en",
    ) -> None:
        self.enabled = enabled
        self._columns = columns
        self._sizes = batch_sizes
        self._rows_written = rows_written
        self._started: float | None = None
        self._stopped: float | None = None
        self.frame = Frame(total=total, lang=lang)
        self._live: Live | None = None
        if enabled:
            self._live = Live(
                _Current(self),
                console=console,
                refresh_per_second=8,
                transient=False,
                redirect_stdout=False,  # rows may be going to stdout
                redirect_stderr=False,
            )

    def start(self) -> None:
        self._started = time.perf_counter()
        if self._live is not None:
            self._live.start()

    def in_flight(self, done: int) -> int:
        """Batches taken from the input and not finished yet."""
        taken = sum(
            math.ceil(column.pulled / self._sizes[kind]) for kind, column in self._columns.items()
        )
        return max(0, taken - done)

    def update(self, progress: ClientProgress) -> None:
        frame = self.frame
        frame.done = progress.batches_done
        frame.flight = self.in_flight(progress.batches_done)
        frame.retries = progress.retries
        frame.failed = progress.failures

    def current(self) -> Frame:
        """The frame as it is now: rows written and the time read at this moment."""
        frame = self.frame
        frame.rows = self._rows_written()
        if self._started is not None:
            end = self._stopped if self._stopped is not None else time.perf_counter()
            frame.elapsed = end - self._started
        return frame

    def stop(self) -> None:
        """Show the last frame once, and leave it on the terminal."""
        if self._stopped is None:
            self._stopped = time.perf_counter()
        if self._live is not None:
            self._live.stop()
            self._live = None


@dataclass
class _Current:
    """What rich's live display renders at each refresh: the bar's current frame."""

    bar: Bar

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        yield self.bar.current().line(options.max_width)
