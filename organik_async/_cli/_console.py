"""stderr for an unattended command: messages that cannot break a run, logs that grep.

A run's exit code says what happened to the rows, so nothing that happens to
stderr may change it: a reader that goes away (``2>&1 >/dev/null | head``) or
a stderr closed from the start (``2>&-``) silences the messages, and the run
goes on. Standard descriptors that are closed at the start are pointed at
``/dev/null``, so that no output file is ever opened as descriptor 2.

Log lines (``-v``) on a terminal are rich's; anywhere else (a file, a pipe,
a journal) each record is one line: ISO 8601 time with its offset, level,
logger name, message.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from datetime import datetime
from typing import TextIO, cast

from rich.console import Console
from rich.logging import RichHandler

__all__ = [
    "LineFormatter",
    "QuietStderr",
    "console",
    "log_handler",
    "open_standard_fds",
    "silence_stderr",
]


def open_standard_fds() -> None:
    """Point standard input, output and error at ``/dev/null`` if they are closed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)


def silence_stderr() -> None:
    """Point descriptor 2 at ``/dev/null``: its reader is gone, and the interpreter's last
    flush of ``sys.stderr`` must not fail (nor turn the exit code into 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
    except OSError:
        pass
    finally:
        os.close(devnull)


class QuietStderr:
    """stderr, or nothing once writing to it fails (its reader gone, or closed).

    After the first failure every write is dropped, and descriptor 2 is
    pointed at ``/dev/null`` so the interpreter's last flush succeeds too.
    It is what rich and logging use of a text stream: ``write``, ``flush``,
    ``isatty``, ``fileno``, ``encoding``.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.gone = self._stream is None
        self.encoding: str = getattr(self._stream, "encoding", None) or "utf-8"

    def _lose(self) -> None:
        self.gone = True
        silence_stderr()

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self._stream.write(text)
            except (OSError, ValueError):  # EPIPE, EBADF; ValueError: closed
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._lose()

    def isatty(self) -> bool:
        if self.gone:
            return False
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        if self.gone:
            raise io.UnsupportedOperation("stderr is gone")
        return self._stream.fileno()

    def writable(self) -> bool:
        return True


def console() -> Console:
    """A rich console on stderr that survives stderr."""
    return Console(file=cast(TextIO, QuietStderr()), stderr=True)


class LineFormatter(logging.Formatter):
    """One line a record: ``2026-07-12T09:30:00.123+03:00 INFO organik_async: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "\\r").replace("\n", "\\n")


def log_handler(target: Console) -> logging.Handler:
    """rich's handler on a terminal; elsewhere one greppable line per record."""
    if target.is_terminal:
        return RichHandler(console=target, show_path=False, markup=False)
    handler = logging.StreamHandler(target.file)
    handler.setFormatter(LineFormatter())
    return handler
