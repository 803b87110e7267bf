"""The journal beside an output file: which batches are in it, and where they end.

One JSON line per record, appended: a ``start`` record naming the output's
format, then one ``batch`` record per batch whose rows are in the output
(its ID kind, its IDs, how many rows it wrote, and the output's size after
them). A batch's rows are written to the output *before* its record is
appended, so at any moment the journal describes a prefix of the output:

* a run killed between the two writes leaves rows after the last recorded
  offset; ``--resume`` cuts the output back to that offset and fetches the
  batch again (no row twice);
* a record torn by a crash is an incomplete last line, ignored;
* after a power loss the journal may reach further than the output's data;
  ``--resume`` reads the output back and keeps only the records whose rows
  it finds there, whole.

Both files are fsynced every second or so and when the run ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import msgspec

__all__ = ["BatchRecord", "Journal", "JournalError", "JournalWriter", "StartRecord"]

VERSION: Final = 1
SYNC_INTERVAL: Final = 1.0


class StartRecord(msgspec.Struct, tag="start", frozen=True):
    format: str
    version: int = VERSION


class BatchRecord(msgspec.Struct, tag="batch", frozen=True):
    kind: str
    ids: list[int | str]
    rows: int
    end: int


_DECODER = msgspec.json.Decoder(StartRecord | BatchRecord)
_ENCODER = msgspec.json.Encoder()


class JournalError(Exception):
    """The journal file is not one this command wrote."""


@dataclass
class Journal:
    """A journal as read back: its format, batches, and where each record ends."""

    format: str
    start_end: int
    batches: list[BatchRecord] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    """The journal's size after each batch record."""

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        """The journal at ``path``, or ``None`` if there is none.

        Reading stops at a torn or unreadable record: what follows cannot be
        trusted, and the batches it names are simply fetched again.
        """
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            return None
        with stream:
            records = _records(stream)
            start, offset = next(records, (None, 0))
            if not isinstance(start, StartRecord):
                raise JournalError(f"{path} is not an organik-report journal")
            if start.version != VERSION:
                raise JournalError(f"{path} is a journal of version {start.version}")
            journal = cls(start.format, offset)
            for record, end in records:
                if not isinstance(record, BatchRecord):
                    break
                journal.batches.append(record)
                journal.ends.append(end)
        return journal


def _records(stream: BinaryIO) -> Iterator[tuple[StartRecord | BatchRecord, int]]:
    offset = 0
    for raw in stream:
        if not raw.endswith(b"\n"):
            return
        try:
            record = _DECODER.decode(raw)
        except msgspec.DecodeError:
            return
        offset += len(raw)
        yield record, offset


class JournalWriter:
    """Appends batch records; ``fresh`` starts a new journal, else keeps ``keep`` bytes."""

    def __init__(self, path: Path, *, fmt: str, fresh: bool, keep: int = 0) -> None:
        self.path = path
        self._file: BinaryIO
        if fresh:
            self._file = path.open("wb")
            self._file.write(_ENCODER.encode(StartRecord(fmt)) + b"\n")
        else:
            self._file = path.open("r+b")
            self._file.truncate(keep)
            self._file.seek(keep)
        self._file.flush()
        self._synced = time.monotonic()

    def append(self, record: BatchRecord) -> None:
        self._file.write(_ENCODER.encode(record) + b"\n")
        self._file.flush()

    def due(self) -> bool:
        """Whether it is time for a periodic fsync."""
        return time.monotonic() - self._synced >= SYNC_INTERVAL

    def sync(self) -> None:
        os.fsync(self._file.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()
