"""Where rows go: the output (each row once), then the journal; and resuming.

The output is opened when the first batch succeeds, never before: a wrong
key or URL fails the first request and leaves an existing report as it
was. Each batch is written whole (rows, flush) and only then journaled, so
a run stopped at any moment can be resumed (see `_journal`).

Rows are unique by ``gsm_track_id`` in the output. Within one ID kind they
cannot repeat (each row has one transaction, one delivery track and one GSM
track ID, and input IDs are deduplicated); across kinds they can, so when a
job mixes kinds the ``gsm_track_id``s written are remembered, and on resume
they are read back from the output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from organik_async import BatchResult, DetailedReport

from ._formats import OutputFormat, OutputProblem, RowDigest, RowEncoder, RowReader, track_key
from ._inputs import Id, InputError
from ._journal import BatchRecord, Journal, JournalError, JournalWriter

__all__ = ["PipeClosed", "ResumeState", "Sink", "Tally", "journal_path", "load_resume"]


class PipeClosed(Exception):
    """The reader of standard output went away (``| head``)."""


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".journal")


@dataclass
class Tally:
    """Rows counted by status and error code (for a summary)."""

    rows: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_errorcode: Counter[int] = field(default_factory=Counter)

    def count(self, status: int, errorcode: int) -> None:
        self.rows += 1
        self.by_status[status] += 1
        if errorcode:
            self.by_errorcode[errorcode] += 1

    def add(self, other: Tally) -> Tally:
        return Tally(
            self.rows + other.rows,
            self.by_status + other.by_status,
            self.by_errorcode + other.by_errorcode,
        )


@dataclass
class ResumeState:
    """What an earlier run left: the IDs done and the part of the output to keep."""

    done: dict[str, set[Id]] = field(default_factory=dict)
    kinds: set[str] = field(default_factory=set)
    output_bytes: int = 0
    journal_bytes: int = 0
    batches: int = 0
    tally: Tally = field(default_factory=Tally)
    track_keys: set[Id] | None = None
    restart: bool = True
    """Nothing usable: the output is written anew."""
    cut: int = 0
    """Bytes of rows in the output beyond the last journaled batch (dropped on resume; a
    JSON array's closing bracket, dropped and written again, is not counted)."""

    @property
    def ids_done(self) -> int:
        return sum(len(ids) for ids in self.done.values())


def load_resume(output: Path, fmt: OutputFormat, input_kinds: Iterable[str]) -> ResumeState:
    """Check the output against its journal; raise `InputError` if it cannot resume."""
    journal_file = journal_path(output)
    try:
        journal = Journal.load(journal_file)
    except JournalError as exc:
        raise InputError(f"cannot resume: {exc}") from None
    exists = output.exists()
    if journal is None:
        if exists and output.stat().st_size:
            raise InputError(
                f"cannot resume {output}: it has no journal ({journal_file.name}), so what it "
                "holds is unknown; run without --resume to fetch everything again"
            )
        return ResumeState()
    if journal.format != fmt:
        raise InputError(
            f"cannot resume {output}: it was written as {journal.format}, not {fmt} "
            f"(pass --format {journal.format})"
        )
    state = ResumeState(journal_bytes=journal.start_end)
    kinds = set(input_kinds) | {batch.kind for batch in journal.batches}
    keys: set[Id] | None = set() if len(kinds) > 1 else None
    if not exists:
        return state
    with output.open("rb") as stream:
        _check_against_journal(RowReader(stream, fmt), journal, state, keys)
        if not state.restart:
            state.cut = _rows_to_cut(stream, state.output_bytes, fmt)
    state.track_keys = keys
    return state


def _rows_to_cut(stream: BinaryIO, keep: int, fmt: OutputFormat) -> int:
    """The bytes of rows after the first ``keep`` bytes: a JSON array's closing bracket at
    the end is not counted (it is cut, and written again when the run ends)."""
    size = stream.seek(0, os.SEEK_END)
    cut = max(0, size - keep)
    footer = RowEncoder(fmt).footer
    if footer and cut >= len(footer):
        stream.seek(size - len(footer))
        if stream.read() == footer:
            cut -= len(footer)
    return cut


def _check_against_journal(
    reader: RowReader, journal: Journal, state: ResumeState, keys: set[Id] | None
) -> None:
    """Keep the journal's batches whose rows are whole in the output, in order."""
    batches = journal.batches
    pending: list[RowDigest] = []
    kept = 0

    def commit(end: int) -> None:
        nonlocal kept
        while kept < len(batches) and batches[kept].end == end:
            batch = batches[kept]
            state.done.setdefault(batch.kind, set()).update(batch.ids)
            state.kinds.add(batch.kind)
            state.journal_bytes = journal.ends[kept]
            kept += 1
        for digest in pending:
            state.tally.count(digest.status, digest.errorcode)
            if keys is not None:
                keys.add(track_key(digest.gsm_track_id))
        pending.clear()
        state.output_bytes = end

    rows = iter(reader)
    try:
        first = next(rows, None)
        if reader.header_end is None:
            return  # no whole header: start the output over
        state.restart = False
        commit(reader.header_end)
        if first is not None:
            for digest, end in _chain(first, rows):
                pending.append(digest)
                if kept < len(batches) and batches[kept].end == end:
                    commit(end)
                elif kept >= len(batches) or batches[kept].end < end:
                    break  # rows the journal does not know: cut here
    except OutputProblem:
        pass  # garbage after the last whole batch (a crash): cut here
    state.batches = kept


def _chain(
    first: tuple[RowDigest, int], rest: Iterable[tuple[RowDigest, int]]
) -> Iterable[tuple[RowDigest, int]]:
    yield first
    yield from rest


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


class Sink:
    """Writes each successful batch: unique rows to the output, then its record."""

    def __init__(
        self,
        *,
        output: Path | None,
        fmt: OutputFormat,
        stdout: Callable[[], BinaryIO],
        resume: ResumeState | None,
        track_keys: set[Id] | None,
        journal: bool = True,
    ) -> None:
        """``track_keys``: the ``gsm_track_id``s already written, when kinds are mixed
        (``None``: one kind, rows cannot repeat). ``journal=False`` (``--until-final``)
        keeps no journal: the output cannot be resumed, and says so."""
        self.output = output
        self.fmt = fmt
        self._stdout = stdout
        self._resume = resume
        self._encoder = RowEncoder(fmt)
        self._file: BinaryIO | None = None
        self._journal: JournalWriter | None = None
        self.opened = False
        self.closed = False
        self.rows_before = resume.tally.rows if resume and not resume.restart else 0
        self.rows_written = 0
        self.duplicates = 0
        self.size = 0
        self.tally = Tally()
        self._keys = track_keys
        self._journaled = journal

    # --- opening ------------------------------------------------------------------------

    def open(self) -> None:
        """Open (and, on resume, cut back) the output: the first answer proved the key good."""
        self.opened = True
        if self.output is None:
            self._write(self._encoder.header)
            return
        resume = self._resume
        journal = journal_path(self.output)
        if not self._journaled:
            self._file = self.output.open("wb")
            self._write(self._encoder.header)
            journal.unlink(missing_ok=True)  # it described an output that is now gone
        elif resume is None or resume.restart:
            self._file = self.output.open("wb")
            self._write(self._encoder.header)
            self._journal = JournalWriter(journal, fmt=self.fmt, fresh=True)
        else:
            self._file = self.output.open("r+b")
            self._file.truncate(resume.output_bytes)
            self._file.seek(resume.output_bytes)
            self.size = resume.output_bytes
            self._journal = JournalWriter(
                journal, fmt=self.fmt, fresh=False, keep=resume.journal_bytes
            )

    # --- writing ------------------------------------------------------------------------

    def accept(self, result: BatchResult, rows: list[DetailedReport] | None = None) -> None:
        """One batch: its new rows to the output, flushed, then its journal record.

        ``rows`` (default: the batch's) are the ones to write: ``--until-final``
        writes only the final ones."""
        written = self.write_rows(result.rows if rows is None else rows)
        if self._journal is not None:
            record = BatchRecord(result.kind, list(result.ids), written, self.size)
            self._journal.append(record)
            if self._journal.due():
                self.sync()

    def write_rows(self, rows: list[DetailedReport]) -> int:
        """Rows not written before to the output, flushed, with no journal record
        (rows followed until final); how many were new."""
        if not self.opened:
            self.open()
        rows = self._unique(rows)
        self._write(self._encoder.encode(rows, self.rows_before + self.rows_written))
        self.rows_written += len(rows)
        for row in rows:
            self.tally.count(row.status, row.errorcode)
        return len(rows)

    def _unique(self, rows: list[DetailedReport]) -> list[DetailedReport]:
        keys = self._keys
        if keys is None:
            return rows
        fresh: list[DetailedReport] = []
        for row in rows:
            key = track_key(row.gsm_track_id)
            if key in keys:
                self.duplicates += 1
            else:
                keys.add(key)
                fresh.append(row)
        return fresh

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self._file is not None:
            self._file.write(data)
            self._file.flush()
        else:
            try:
                out = self._stdout()
                out.write(data)
                out.flush()
            except OSError as exc:
                if exc.errno != errno.EPIPE:
                    raise
                _silence_stdout()
                raise PipeClosed from None
        self.size += len(data)

    def sync(self) -> None:
        """Output first, then journal: the journal never gets ahead on disk."""
        if self._file is not None:
            os.fsync(self._file.fileno())
        if self._journal is not None:
            self._journal.sync()

    # --- closing ------------------------------------------------------------------------

    def discard(self) -> None:
        """Close the files as they are, for an output that is thrown away."""
        self.closed = True
        for stream in (self._file, self._journal):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self, *, pipe_closed: bool = False) -> None:
        """Close the JSON array (if any) and the files, synced."""
        if self.closed:
            return
        self.closed = True
        if self.opened and not pipe_closed:
            self._write(self._encoder.footer)
        if self._file is not None:
            self.sync()
            self._file.close()
        if self._journal is not None:
            self._journal.close()
