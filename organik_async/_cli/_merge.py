"""``organik-report merge``: the outputs of several runs (a job's shards) as one, each row once.

A job split with ``--shard K/N`` leaves one output per shard. The shards
split the input by ID, so when the input mixes ID kinds, a row reached
through two of its IDs can be in two shards' outputs: merging keeps one row
per ``gsm_track_id``.

The inputs are read twice, streamed, so that a million rows never sit in
memory at once; what is kept between the passes is one int per
``gsm_track_id`` (the rank of its best copy and a hash of it):

1. **Survey**: each input is read whole and checked (its format, a torn last
   line, an unclosed JSON array); for each ``gsm_track_id`` the rank of its
   best copy is kept, and whether its copies differ. Any problem stops the
   merge here, before anything is written.
2. **Write**: the inputs are read again in the same order, and each row is
   written when it is the first copy of its ``gsm_track_id`` with the best
   rank (the first copy, when its copies are alike), with the same encoder as
   ``fetch``, to a temporary file beside the output that replaces it only
   when every row is written and synced.

Which copy is kept when copies differ: the one furthest along, since rows
only move forward (not sent yet, then handed to the operator, then final):
a final status (delivered, invalid number, timed out) over any other, a
status the client does not know over "handed to the operator", and that over
"not sent yet"; then the later ``finish_date`` (a copy with one over a copy
without); then the first in the order the inputs were given.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final

import msgspec

from organik_async import DetailedReport

from ._formats import OutputFormat, OutputProblem, ReportReader, track_key
from ._inputs import Id, InputError
from ._sink import Sink, Tally, journal_path

__all__ = ["MergeInput", "MergeResult", "merge_outputs", "rank"]

WRITE_ROWS: Final = 1024
"""Rows encoded and written at a time."""
_HASH_BITS: Final = 64
_HASH_MASK: Final = (1 << _HASH_BITS) - 1
_PROGRESS: Final = {0: 0, 1: 1, 2: 3, 3: 3, 4: 3}
"""How far along a status is; a status not in the table ranks 2 (after 1, before final)."""
_UNKNOWN_PROGRESS: Final = 2
_NOT_OURS: Final = (".journal", ".failed.csv", ".partial")


@dataclass(frozen=True)
class MergeInput:
    """One file to merge, and the format it is read as."""

    path: Path
    fmt: OutputFormat
    declared: bool = False
    """The format was given (``--input-format``), not taken from the extension."""


@dataclass
class InputCount:
    """What one input held, and how many of its rows were written."""

    path: Path
    fmt: OutputFormat
    rows: int = 0
    kept: int = 0


@dataclass
class MergeResult:
    """What a merge read and wrote."""

    inputs: list[InputCount]
    tally: Tally = field(default_factory=Tally)
    """The rows written, by status and error code."""
    conflicts: int = 0
    """``gsm_track_id``s whose copies differed (one of them was kept, by `rank`)."""
    journal_removed: Path | None = None
    """A journal beside the output that described the file replaced, removed."""
    failed_files: list[Path] = field(default_factory=list)
    """Failed files beside inputs: their runs left IDs unfetched."""

    @property
    def rows_read(self) -> int:
        return sum(item.rows for item in self.inputs)

    @property
    def duplicates(self) -> int:
        """Rows not written: another copy of their ``gsm_track_id`` was."""
        return self.rows_read - self.tally.rows


def rank(row: DetailedReport) -> int:
    """How good a copy of a row is: the higher, the later in the row's life.

    How far along its status is first, then its ``finish_date`` (none ranks
    lowest); copies of equal rank are told apart by the order they are read in.
    """
    progress = _PROGRESS.get(row.status, _UNKNOWN_PROGRESS)
    return progress << 64 | _microseconds(row.finish_date)


def _microseconds(when: datetime | None) -> int:
    """``when`` as microseconds since year 1 (under 2**59), as written (no time zone)."""
    if when is None:
        return 0
    seconds = when.toordinal() * 86_400 + when.hour * 3_600 + when.minute * 60 + when.second
    return seconds * 1_000_000 + when.microsecond


def merge_outputs(
    inputs: Sequence[MergeInput],
    output: Path | None,
    fmt: OutputFormat,
    *,
    stdout: Callable[[], BinaryIO],
) -> MergeResult:
    """Merge ``inputs`` into ``output`` (``None``: standard output) as ``fmt``.

    Raises:
        InputError: an input cannot be read, is not an output of this command in its
            format, or ends with an incomplete row; or changed while it was merged.
            Nothing is written (an input that changes during the write leaves the
            output as it was).
        OSError: the output cannot be written; it is left as it was.
        PipeClosed: the reader of standard output went away.
    """
    for item in inputs:
        if item.path.name.endswith(_NOT_OURS):
            raise InputError(
                f"{item.path} is not an output but a file kept beside one (a journal, a "
                "failed file or an unfinished merge): merge the outputs only"
            )
    survey = _survey(inputs)
    result = MergeResult(
        inputs=[
            InputCount(item.path, item.fmt, rows)
            for item, rows in zip(inputs, survey.rows, strict=True)
        ],
        conflicts=len(survey.differing),
        failed_files=[
            failed
            for item in inputs
            if (failed := item.path.with_name(item.path.name + ".failed.csv")).exists()
        ],
    )
    _write(inputs, survey, result, output, fmt, stdout)
    return result


@dataclass
class _Survey:
    """What the first pass learnt."""

    best: dict[Id, int] = field(default_factory=dict)
    """Per ``gsm_track_id``: the rank of its best copy, shifted left by `_HASH_BITS`,
    with the low bits a hash of that copy (to tell whether copies differ)."""
    differing: set[Id] = field(default_factory=set)
    """The ``gsm_track_id``s whose copies differ."""
    rows: list[int] = field(default_factory=list)
    """Rows in each input."""
    identities: list[tuple[int, ...]] = field(default_factory=list)
    """Each input's file identity (device, inode, size, modification time) when read."""


def _survey(inputs: Sequence[MergeInput]) -> _Survey:
    """Read every input whole, checked, and find the best copy of each row."""
    survey = _Survey()
    best, differing = survey.best, survey.differing
    for item in inputs:
        rows = 0
        with _reading(item) as (stream, reader):
            identity = _identity(stream)
            for row in _rows(item, reader):
                rows += 1
                key = track_key(row.gsm_track_id)
                mark = rank(row) << _HASH_BITS | (_content(row, key) & _HASH_MASK)
                kept = best.get(key)
                if kept is None:
                    best[key] = mark
                    continue
                if (kept ^ mark) & _HASH_MASK:
                    differing.add(key)
                if mark >> _HASH_BITS > kept >> _HASH_BITS:
                    best[key] = mark
            _check_whole(item, reader)
            _check_unchanged(item, stream, identity)
        survey.rows.append(rows)
        survey.identities.append(identity)
    return survey


def _content(row: DetailedReport, key: Id) -> int:
    """A hash of ``row`` that does not tell ``"123"`` from ``123`` (as CSV cannot)."""
    if key != row.gsm_track_id:
        row = msgspec.structs.replace(row, gsm_track_id=key)
    return hash(row)


def _write(
    inputs: Sequence[MergeInput],
    survey: _Survey,
    result: MergeResult,
    output: Path | None,
    fmt: OutputFormat,
    stdout: Callable[[], BinaryIO],
) -> None:
    """Write the best copy of each row, atomically when ``output`` is a file."""
    partial = None if output is None else _partial_path(output)
    sink = Sink(output=partial, fmt=fmt, stdout=stdout, resume=None, track_keys=None, journal=False)
    best, differing = survey.best, survey.differing
    try:
        sink.open()
        for item, identity, count in zip(inputs, survey.identities, result.inputs, strict=True):
            written_before = sink.rows_written
            with _reading(item) as (stream, reader):
                _check_unchanged(item, stream, identity)
                batch: list[DetailedReport] = []
                for row in _rows(item, reader):
                    key = track_key(row.gsm_track_id)
                    mark = best.get(key)
                    if mark is None:
                        continue  # its best copy is written already
                    if key in differing and mark >> _HASH_BITS != rank(row):
                        continue  # not the best copy (copies alike: the first is written)
                    del best[key]
                    batch.append(row)
                    if len(batch) == WRITE_ROWS:
                        sink.write_rows(batch)
                        batch.clear()
                sink.write_rows(batch)
                count.kept = sink.rows_written - written_before
                _check_unchanged(item, stream, identity)
        if best:  # cannot happen while the inputs stay as they were (checked above)
            raise InputError(f"{len(best):,} rows of the inputs could not be found again")
        sink.close()
    except BaseException:
        sink.discard()
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise
    result.tally = sink.tally
    if output is not None and partial is not None:
        _replace(partial, output)
        journal = journal_path(output)
        if journal.exists():
            journal.unlink()  # it described the file just replaced: --resume must not trust it
            result.journal_removed = journal


@contextlib.contextmanager
def _reading(item: MergeInput) -> Iterator[tuple[BinaryIO, ReportReader]]:
    """``item`` open for reading, and a reader of its rows (see `_rows`)."""
    try:
        stream = item.path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {item.path}: {exc.strerror or exc}") from None
    with stream:
        yield stream, ReportReader(stream, item.fmt)


def _rows(item: MergeInput, reader: ReportReader) -> Iterator[DetailedReport]:
    """The rows ``reader`` reads; what is wrong in them, or in reading them, is an
    `InputError` (an error of the caller's, such as a failed write, is not)."""
    try:
        for row, _ in reader:
            yield row
    except OutputProblem as exc:
        raise InputError(f"{item.path}:{exc.line}: {exc.reason}{_read_as(item)}") from None
    except OSError as exc:
        raise InputError(f"cannot read {item.path}: {exc.strerror or exc}") from None


def _read_as(item: MergeInput) -> str:
    how = "as --input-format says" if item.declared else "as its extension says"
    return f"; read as {item.fmt}, {how}"


def _check_whole(item: MergeInput, reader: ReportReader) -> None:
    """An input cut short (a run killed while writing, or still going) is refused."""
    if reader.header_end is None:
        what = "no whole header"
    elif reader.incomplete_tail:
        what = "an incomplete last row"
    elif item.fmt == "json" and not reader.closed:
        what = "a JSON array that is not closed"
    else:
        return
    raise InputError(
        f"{item.path} has {what}: its run was interrupted or is still going. Finish "
        "it first (the same fetch command with --resume), then merge; nothing was written"
    )


def _identity(stream: BinaryIO) -> tuple[int, ...]:
    status = os.fstat(stream.fileno())
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _check_unchanged(item: MergeInput, stream: BinaryIO, identity: tuple[int, ...]) -> None:
    if _identity(stream) != identity:
        raise InputError(
            f"{item.path} changed while it was merged (is its run still going?); nothing was "
            "written: merge again when it has finished"
        )


def _partial_path(output: Path) -> Path:
    """A file beside ``output``, on the same file system, unique to this merge."""
    return output.with_name(f"{output.name}.{secrets.token_hex(4)}.partial")


def _replace(partial: Path, output: Path) -> None:
    """``partial`` becomes ``output`` in one step; an existing output keeps its permissions."""
    try:
        if output.exists():
            shutil.copymode(output, partial)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _sync_folder(output.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (where a folder can be synced: not on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
