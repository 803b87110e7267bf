"""Reading IDs from files, checked to the last line before anything is sent.

An operator's input is a plain file (one ID per line), a CSV export (one
column of it), or a failed file written by an earlier run (``kind,id``
columns). Every ID is checked against what its kind looks like, so a stray
header, ``1.5e7`` or ``-5`` is an input error naming ``FILE:LINE`` instead of
a request that silently returns nothing. The whole input is read first: that
is what makes "nothing sent on bad input" true, gives the progress bar an
exact total, and lets ``--shard`` and ``--resume`` filter it.

IDs are kept per kind, deduplicated, in input order; integers are packed in
an ``array`` (8 bytes each), so a million IDs cost a few megabytes.
"""

from __future__ import annotations

import codecs
import csv
import re
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Final, Literal

__all__ = [
    "COLUMNS",
    "KINDS",
    "IdColumn",
    "InputError",
    "InputSet",
    "Shard",
    "Source",
    "parse_id",
    "read_inputs",
    "shard_of",
]

KINDS: Final = ("transaction_ids", "delivery_track_ids", "gsm_track_ids")
"""The client's three ID kinds, in the order it sends them."""
COLUMNS: Final = {
    "transaction_ids": "transaction_id",
    "delivery_track_ids": "delivery_track_id",
    "gsm_track_ids": "gsm_track_id",
}
"""The CSV column each kind is read from by default (the row field it matches)."""
_LABELS: Final = {
    "transaction_ids": "transaction ID",
    "delivery_track_ids": "delivery track ID",
    "gsm_track_ids": "GSM track ID",
}
_KIND_NAMES: Final = {
    alias: kind
    for kind in KINDS
    for alias in (kind, COLUMNS[kind], kind.replace("_", "-"), kind.split("_")[0])
}
MAX_BAD_LINES_SHOWN: Final = 20
_MAX_DIGITS = 18  # fits a signed 64-bit integer with room to spare
_DIGITS = re.compile(rf"[0-9]{{1,{_MAX_DIGITS}}}")
_DASHED = re.compile(rf"[0-9]{{1,{_MAX_DIGITS}}}-[0-9]{{1,{_MAX_DIGITS}}}-[0-9]{{1,{_MAX_DIGITS}}}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

InputFormat = Literal["auto", "lines", "csv"]
Id = int | str


class InputError(Exception):
    """Bad input or a bad combination of inputs: exit 2, nothing sent."""


def parse_id(kind: str, text: str) -> Id:
    """The ID ``text`` stands for, or ``ValueError`` saying why it is not one.

    Transaction IDs are digits; GSM track IDs are digits or the provider's
    ``digits-digits-digits`` form (kept as a string); a delivery track ID is
    any text the sender chose, without control characters.
    """
    if not text:
        raise ValueError(f"no {_LABELS[kind]}")
    if kind == "delivery_track_ids":
        if _CONTROL.search(text):
            raise ValueError(f"a delivery track ID cannot hold control characters: {text!r}")
        return text
    if _DIGITS.fullmatch(text):
        return int(text)
    if kind == "gsm_track_ids":
        if _DASHED.fullmatch(text):
            return text
        raise ValueError(f"not a GSM track ID (digits, or digits-digits-digits): {text!r}")
    if text.isascii() and text.isdigit():
        raise ValueError(f"not a transaction ID (more than {_MAX_DIGITS} digits): {text!r}")
    raise ValueError(f"not a transaction ID (digits only): {text!r}")


@dataclass(frozen=True)
class Shard:
    """``--shard K/N``: the K-th (from 1) of N slices of the input."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        k, sep, n = text.partition("/")
        if not (sep and k.isdigit() and n.isdigit()):
            raise ValueError(f"expected K/N such as 2/8, got {text!r}")
        shard = cls(int(k), int(n))
        if not 1 <= shard.index <= shard.count:
            raise ValueError(f"K must be between 1 and N, got {text!r}")
        return shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, kind: str, value: Id) -> bool:
        return shard_of(kind, value, self.count) == self.index


def shard_of(kind: str, value: Id, count: int) -> int:
    """The slice (1..count) an ID belongs to: CRC-32 of ``kind:id``, modulo ``count``.

    A pure function of the ID, the same on every machine and Python version,
    so N processes given the same input split it with no coordination, and
    duplicates of an ID always land in the same slice.
    """
    return zlib.crc32(f"{kind}:{value}".encode()) % count + 1


class IdColumn:
    """One kind's IDs, deduplicated, in input order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._ints = array("q")
        self._strs: list[str] = []
        self._seen: set[Id] | None = set()
        self.pulled = 0
        """How many IDs `feed()` has handed out (the client reads lazily)."""

    def add(self, value: Id) -> bool:
        """Keep ``value``; ``False`` if it was already there."""
        assert self._seen is not None, "a frozen column takes no more IDs"
        if value in self._seen:
            return False
        self._seen.add(value)
        if isinstance(value, int):
            self._ints.append(value)
        else:
            self._strs.append(value)
        return True

    def freeze(self) -> None:
        """Drop the set used to spot duplicates: the column is complete."""
        self._seen = None

    def __len__(self) -> int:
        return len(self._ints) + len(self._strs)

    def __iter__(self) -> Iterator[Id]:
        yield from self._ints
        yield from self._strs

    def without(self, done: set[Id]) -> IdColumn:
        """A frozen copy without the IDs in ``done``."""
        kept = IdColumn(self.kind)
        kept._ints = array("q", (v for v in self._ints if v not in done))
        kept._strs = [v for v in self._strs if v not in done]
        kept.freeze()
        return kept

    def feed(self) -> Iterator[Id]:
        """The IDs for the client, counting how many it has taken so far."""
        for value in self:
            self.pulled += 1
            yield value


@dataclass(frozen=True)
class Source:
    """One input file. ``kind`` is ``None`` for the ``kind,id`` form (``--ids``)."""

    kind: str | None
    path: str  # "-" is stdin

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == "-" else self.path


@dataclass
class InputSet:
    """Everything read from the inputs: the IDs, and what was left out and why."""

    columns: dict[str, IdColumn] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    ids_read: int = 0
    duplicates: int = 0
    other_shards: int = 0
    bad_lines: list[str] = field(default_factory=list)
    bad_line_count: int = 0

    def column(self, kind: str) -> IdColumn:
        if kind not in self.columns:
            self.columns[kind] = IdColumn(kind)
        return self.columns[kind]

    @property
    def total(self) -> int:
        return sum(len(c) for c in self.columns.values())

    def bad(self, where: str, reason: str) -> None:
        self.bad_line_count += 1
        if len(self.bad_lines) < MAX_BAD_LINES_SHOWN:
            self.bad_lines.append(f"{where}: {reason}")

    def keep(self, kind: str, value: Id, shard: Shard | None) -> None:
        self.ids_read += 1
        if shard is not None and not shard.holds(kind, value):
            self.other_shards += 1
        elif not self.column(kind).add(value):
            self.duplicates += 1

    @classmethod
    def of(cls, ids: dict[str, Iterable[Id]]) -> InputSet:
        """IDs given in code (the demo), as if read from files."""
        inputs = cls()
        for kind in KINDS:
            for value in ids.get(kind, ()):
                inputs.keep(kind, value, None)
        for column in inputs.columns.values():
            column.freeze()
        return inputs


def read_inputs(
    sources: list[Source],
    *,
    input_format: InputFormat = "auto",
    column: str | None = None,
    skip_bad_lines: bool = False,
    shard: Shard | None = None,
    stdin: BinaryIO | None = None,
) -> InputSet:
    """Read and check every input; raise `InputError` on any problem.

    Bad lines are errors unless ``skip_bad_lines`` (then counted and listed).
    An input with no ID at all is an error, not an empty success.
    """
    if sum(s.path == "-" for s in sources) > 1:
        raise InputError("standard input ('-') can be given only once")
    inputs = InputSet(sources=list(sources))
    for source in sources:
        try:
            if source.path == "-":
                _read_source(source, stdin or sys.stdin.buffer, inputs, input_format, column, shard)
            else:
                with open(source.path, "rb") as stream:
                    _read_source(source, stream, inputs, input_format, column, shard)
        except OSError as exc:
            raise InputError(f"{source.name}: cannot read: {exc.strerror or exc}") from None
    for ids in inputs.columns.values():
        ids.freeze()
    if inputs.bad_line_count and not skip_bad_lines:
        raise InputError(_bad_lines_message(inputs))
    if inputs.ids_read == 0:
        names = ", ".join(s.name for s in sources)
        raise InputError(f"no IDs in the input ({names}): nothing to fetch")
    return inputs


def _bad_lines_message(inputs: InputSet) -> str:
    count = inputs.bad_line_count
    lines = [f"{count} bad line{'s' if count > 1 else ''} in the input; nothing was sent:"]
    lines += [f"  {line}" for line in inputs.bad_lines]
    if count > len(inputs.bad_lines):
        lines.append(f"  ... and {count - len(inputs.bad_lines)} more")
    lines.append("fix them, or pass --skip-bad-lines to leave them out")
    return "\n".join(lines)


def _read_source(
    source: Source,
    stream: BinaryIO,
    inputs: InputSet,
    input_format: InputFormat,
    column: str | None,
    shard: Shard | None,
) -> None:
    is_csv = (
        source.kind is None
        or input_format == "csv"
        or (input_format == "auto" and source.path.lower().endswith(".csv"))
    )
    lines = _decoded_lines(source, stream, inputs)
    if not is_csv:
        assert source.kind is not None
        _read_plain(source, source.kind, lines, inputs, shard)
    elif source.kind is None:
        _read_kind_id_csv(source, lines, inputs, shard)
    else:
        _read_csv(source, source.kind, column or COLUMNS[source.kind], lines, inputs, shard)


def _decoded_lines(source: Source, stream: BinaryIO, inputs: InputSet) -> Iterator[str]:
    """The file's lines as text; a BOM at the start is dropped.

    A line that is not UTF-8 is reported as a bad line and read as empty.
    """
    for number, raw in enumerate(stream, 1):
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            inputs.bad(f"{source.name}:{number}", "not UTF-8 text")
            yield "\n"


def _read_plain(
    source: Source, kind: str, lines: Iterator[str], inputs: InputSet, shard: Shard | None
) -> None:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            value = parse_id(kind, text)
        except ValueError as exc:
            reason = str(exc)
            if "," in text or ";" in text:
                reason += " (a CSV file? name it .csv or pass --input-format csv)"
            inputs.bad(f"{source.name}:{number}", reason)
            continue
        inputs.keep(kind, value, shard)


def _records(lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the line each starts on; blank records skipped."""
    reader = csv.reader(lines)
    start = 1
    for record in reader:
        cells = [cell.strip() for cell in record]
        if any(cells):
            yield start, cells
        start = reader.line_num + 1


def _find_column(source: Source, header: list[str], wanted: str, number: int) -> int:
    if wanted in header:
        return header.index(wanted)
    folded = [name.casefold() for name in header]
    if folded.count(wanted.casefold()) == 1:
        return folded.index(wanted.casefold())
    columns = ", ".join(repr(name) for name in header)
    raise InputError(
        f"{source.name}:{number}: no column {wanted!r} in the CSV header (columns: {columns}); "
        "choose one with --column NAME"
    )


def _read_csv(
    source: Source,
    kind: str,
    wanted: str,
    lines: Iterator[str],
    inputs: InputSet,
    shard: Shard | None,
) -> None:
    records = _records(lines)
    first = next(records, None)
    if first is None:
        return
    index = _find_column(source, first[1], wanted, first[0])
    width = len(first[1])
    for number, cells in records:
        where = f"{source.name}:{number}"
        if len(cells) != width:
            inputs.bad(where, f"{len(cells)} fields where the header has {width}")
            continue
        text = cells[index]
        if not text:
            inputs.bad(where, f"no {_LABELS[kind]} in column {wanted!r}")
            continue
        try:
            value = parse_id(kind, text)
        except ValueError as exc:
            inputs.bad(where, str(exc))
            continue
        inputs.keep(kind, value, shard)


def _read_kind_id_csv(
    source: Source, lines: Iterator[str], inputs: InputSet, shard: Shard | None
) -> None:
    """The ``kind,id[,...]`` form: a failed file, or any CSV with those columns."""
    records = _records(lines)
    first = next(records, None)
    if first is None:
        return
    kind_at = _find_column(source, first[1], "kind", first[0])
    id_at = _find_column(source, first[1], "id", first[0])
    for number, cells in records:
        where = f"{source.name}:{number}"
        if len(cells) <= max(kind_at, id_at):
            inputs.bad(where, f"{len(cells)} fields where the header has {len(first[1])}")
            continue
        kind = _KIND_NAMES.get(cells[kind_at].casefold())
        if kind is None:
            inputs.bad(
                where,
                f"unknown ID kind {cells[kind_at]!r} (transaction_id, delivery_track_id "
                "or gsm_track_id)",
            )
            continue
        try:
            value = parse_id(kind, cells[id_at])
        except ValueError as exc:
            inputs.bad(where, str(exc))
            continue
        inputs.keep(kind, value, shard)
