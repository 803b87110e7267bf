"""Reading IDs from files, checked to the last line before anything is sent.

An operator's input is a plain file (one ID per line), a CSV export (one
column of it), or a failed file written by an earlier run (``kind,id``
columns). A CSV's delimiter (comma, semicolon, tab or pipe) is found from its
header, whose names are matched without regard to case, spaces, underscores,
hyphens or accents, so Excel's export in any locale is read as it is saved. Text
is UTF-8 unless an encoding is given (Excel on Turkish Windows saves
windows-1254); a file that does not decode is refused whole, naming the flag
that reads it. Every ID is checked against what its kind looks like, so a stray
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
import unicodedata
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Final, Literal, NamedTuple

__all__ = [
    "COLUMNS",
    "DELIMITERS",
    "KINDS",
    "IdColumn",
    "InputError",
    "InputSet",
    "Shard",
    "Source",
    "check_encoding",
    "parse_delimiter",
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

DELIMITERS: Final = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
"""The delimiters a CSV header is searched for, by the names ``--delimiter`` takes too."""
TURKISH_EXCEL_ENCODING: Final = "windows-1254"
"""What Excel on Turkish Windows saves "CSV" in (it also reads ISO-8859-9 text)."""
_SNIFFED_LINES = 20
_ASCII_PROBE = '\n\r\t ,;|"0123456789-_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
_UTF16_BOMS: Final = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

InputFormat = Literal["auto", "lines", "csv"]
Id = int | str


class InputError(Exception):
    """Bad input or a bad combination of inputs: exit 2, nothing sent."""


def parse_delimiter(text: str) -> str:
    """``--delimiter``: one character, or ``comma``, ``semicolon``, ``tab``, ``pipe``
    (``\\t`` is a tab too); ``ValueError`` saying why not."""
    named = DELIMITERS.get(text.lower(), "\t" if text == "\\t" else text)
    if len(named) != 1:
        raise ValueError(f"expected one character or {', '.join(DELIMITERS)}, got {text!r}")
    if named.isalnum() or named in '"\r\n':
        raise ValueError(f"a letter, digit, quote or line break cannot separate fields: {text!r}")
    return named


def check_encoding(name: str) -> str:
    """``--encoding``: the codec's canonical name; ``ValueError`` if it is unknown, or
    does not write digits, separators and line ends as ASCII does (UTF-16, say)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    try:
        compatible = _ASCII_PROBE.encode(info.name) == _ASCII_PROBE.encode("ascii")
    except UnicodeError:
        compatible = False
    if not compatible:
        raise ValueError(
            f"encoding {name!r} is not supported: save the file as CSV UTF-8, or in an "
            f"encoding that keeps ASCII as it is (such as {TURKISH_EXCEL_ENCODING})"
        )
    return name


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


class _Reading(NamedTuple):
    """How every input is read: the options that apply to each file."""

    input_format: InputFormat
    column: str | None
    shard: Shard | None
    delimiter: str | None
    encoding: str | None
    """``None``: UTF-8, not chosen (a refusal then suggests windows-1254)."""


def read_inputs(
    sources: list[Source],
    *,
    input_format: InputFormat = "auto",
    column: str | None = None,
    skip_bad_lines: bool = False,
    shard: Shard | None = None,
    stdin: BinaryIO | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    allow_empty: bool = False,
) -> InputSet:
    """Read and check every input; raise `InputError` on any problem.

    Bad lines are errors unless ``skip_bad_lines`` (then counted and listed).
    A file that does not decode in ``encoding`` (default UTF-8) is refused
    whole. An input with no ID at all is an error, not an empty success,
    unless ``allow_empty`` and no line was bad.
    """
    if sum(s.path == "-" for s in sources) > 1:
        raise InputError("standard input ('-') can be given only once")
    reading = _Reading(input_format, column, shard, delimiter, encoding)
    inputs = InputSet(sources=list(sources))
    for source in sources:
        try:
            if source.path == "-":
                _read_source(source, stdin or sys.stdin.buffer, inputs, reading)
            else:
                with open(source.path, "rb") as stream:
                    _read_source(source, stream, inputs, reading)
        except OSError as exc:
            raise InputError(f"{source.name}: cannot read: {exc.strerror or exc}") from None
    for ids in inputs.columns.values():
        ids.freeze()
    if inputs.bad_line_count and not skip_bad_lines:
        raise InputError(_bad_lines_message(inputs))
    if inputs.ids_read == 0 and not (allow_empty and not inputs.bad_line_count):
        names = ", ".join(s.name for s in sources)
        raise InputError(
            f"no IDs in the input ({names}): nothing to fetch "
            "(--allow-empty makes that an empty report)"
        )
    return inputs


def _bad_lines_message(inputs: InputSet) -> str:
    count = inputs.bad_line_count
    lines = [f"{count} bad line{'s' if count > 1 else ''} in the input; nothing was sent:"]
    lines += [f"  {line}" for line in inputs.bad_lines]
    if count > len(inputs.bad_lines):
        lines.append(f"  ... and {count - len(inputs.bad_lines)} more")
    lines.append("fix them, or pass --skip-bad-lines to leave them out")
    return "\n".join(lines)


def _read_source(source: Source, stream: BinaryIO, inputs: InputSet, reading: _Reading) -> None:
    is_csv = (
        source.kind is None
        or reading.input_format == "csv"
        or (reading.input_format == "auto" and source.path.lower().endswith(".csv"))
    )
    lines = _decoded_lines(source, stream, reading.encoding)
    if not is_csv:
        assert source.kind is not None
        _read_plain(source, source.kind, lines, inputs, reading.shard)
    elif source.kind is None:
        _read_kind_id_csv(source, lines, inputs, reading)
    else:
        _read_csv(source, source.kind, lines, inputs, reading)


def _decoded_lines(source: Source, stream: BinaryIO, encoding: str | None) -> Iterator[str]:
    """The file's lines as text, decoded whole or refused with `InputError`.

    A UTF-8 byte order mark says the file is UTF-8, whatever ``encoding``
    says (Excel's "CSV UTF-8" writes one); it is dropped.
    """
    chosen = encoding or "utf-8"
    for number, raw in enumerate(stream, 1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw, chosen = raw.removeprefix(codecs.BOM_UTF8), "utf-8"
        try:
            yield raw.decode(chosen)
        except UnicodeDecodeError:
            raise InputError(_not_decoded(source, number, raw, chosen, encoding)) from None


def _not_decoded(source: Source, number: int, raw: bytes, chosen: str, given: str | None) -> str:
    where = f"{source.name}:{number}"
    if number == 1 and raw.startswith(_UTF16_BOMS):
        return (
            f'{where}: UTF-16 text (what Excel saves as "Unicode Text"): save it as '
            '"CSV UTF-8" instead, or as CSV with --encoding ' + TURKISH_EXCEL_ENCODING
        )
    name = "UTF-8" if chosen == "utf-8" else chosen
    if given is None:
        return (
            f"{where}: not UTF-8 text; a file saved by Excel on Turkish Windows is "
            f"{TURKISH_EXCEL_ENCODING} (which reads ISO-8859-9 too): pass --encoding "
            f"{TURKISH_EXCEL_ENCODING}, or --encoding with the file's own encoding"
        )
    return f"{where}: not {name} text: pass --encoding with the file's own encoding"


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
            if any(c in text for c in DELIMITERS.values()):
                reason += " (a CSV file? name it .csv or pass --input-format csv)"
            inputs.bad(f"{source.name}:{number}", reason)
            continue
        inputs.keep(kind, value, shard)


def _folded(name: str) -> str:
    """A header name as it is compared: no case, spaces, underscores, hyphens or accents
    (``İşlem No``, ``islem_no`` and ``ISLEM-NO`` are alike)."""
    decomposed = unicodedata.normalize("NFKD", name.replace("ı", "i"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\s_-]+", "", plain.casefold())


def _column_at(header: list[str], wanted: str) -> list[int]:
    """Where ``wanted`` is in ``header``: its exact name, else every alike name."""
    if wanted in header:
        return [header.index(wanted)]
    folded = _folded(wanted)
    return [at for at, name in enumerate(header) if _folded(name) == folded]


def _find_column(
    source: Source, header: list[str], wanted: str, number: int, *, explicit: bool
) -> int:
    """The index of column ``wanted``; a one-column CSV's only column unless ``explicit``."""
    found = _column_at(header, wanted)
    if len(found) == 1:
        return found[0]
    columns = ", ".join(repr(name) for name in header)
    where = f"{source.name}:{number}"
    if found:
        raise InputError(
            f"{where}: {wanted!r} matches {len(found)} columns of the CSV header (columns: "
            f"{columns}); choose one by its exact name with --column NAME"
        )
    if len(header) == 1 and not explicit and not any(c in header[0] for c in DELIMITERS.values()):
        return 0  # one column, whatever its name (not one a wrong delimiter left whole)
    hint = "choose one with --column NAME"
    if len(header) == 1:
        hint += " or set the delimiter with --delimiter"
    raise InputError(
        f"{where}: no column {wanted!r} in the CSV header (columns: {columns}); {hint}"
    )


def _delimiter(header_line: str, sample: list[str], wanted: list[str], chosen: str | None) -> str:
    """The CSV's delimiter: ``chosen`` (``--delimiter``), else found from the header.

    Of the candidates in the header line, one alone is it; of several, the one
    under which the ``wanted`` columns are in the header, else the one
    `csv.Sniffer` picks from the first lines, else the one that cuts the
    header into the most fields.
    """
    if chosen is not None:
        return chosen
    candidates = [c for c in DELIMITERS.values() if c in header_line]
    if len(candidates) <= 1:
        return candidates[0] if candidates else ","

    def fields(delimiter: str) -> list[str]:
        return [cell.strip() for cell in next(csv.reader([header_line], delimiter=delimiter), [])]

    yielding = [c for c in candidates if all(_column_at(fields(c), name) for name in wanted)]
    if len(yielding) == 1:
        return yielding[0]
    try:
        return csv.Sniffer().sniff("".join(sample), delimiters="".join(candidates)).delimiter
    except csv.Error:
        return max(candidates, key=lambda c: len(fields(c)))


class _Records:
    """A CSV's non-blank records with the line each starts on; its delimiter is found
    from the header (the first line that is not blank) and the lines after it."""

    def __init__(self, lines: Iterator[str], wanted: list[str], delimiter: str | None) -> None:
        sample: list[str] = []
        header: str | None = None
        for line in lines:
            sample.append(line)
            if header is None:
                header = line if line.strip() else None
            elif len(sample) > _SNIFFED_LINES:
                break
        self._sample = sample
        self._lines = lines
        self.delimiter = "," if header is None else _delimiter(header, sample, wanted, delimiter)

    def _all_lines(self) -> Iterator[str]:
        yield from self._sample
        yield from self._lines

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self._all_lines(), delimiter=self.delimiter)
        start = 1
        for record in reader:
            cells = [cell.strip() for cell in record]
            if any(cells):
                yield start, cells
            start = reader.line_num + 1


def _read_csv(
    source: Source, kind: str, lines: Iterator[str], inputs: InputSet, reading: _Reading
) -> None:
    wanted = reading.column or COLUMNS[kind]
    records = iter(_Records(lines, [wanted], reading.delimiter))
    first = next(records, None)
    if first is None:
        return
    number, header = first
    if _is_headless(kind, header, reading.column):
        index = 0
        records = _chain_record(first, records)
    else:
        index = _find_column(source, header, wanted, number, explicit=reading.column is not None)
    width = len(header)
    for number, cells in records:
        where = f"{source.name}:{number}"
        if len(cells) != width:
            inputs.bad(where, f"{len(cells)} fields where the header has {width}")
            continue
        text = cells[index]
        if not text:
            inputs.bad(where, f"no {_LABELS[kind]} in column {header[index]!r}")
            continue
        try:
            value = parse_id(kind, text)
        except ValueError as exc:
            inputs.bad(where, str(exc))
            continue
        inputs.keep(kind, value, reading.shard)


def _is_headless(kind: str, header: list[str], column: str | None) -> bool:
    """Whether a one-column CSV has no header: its first cell is already an ID.

    Told only for the kinds whose IDs are digits: a delivery track ID can be
    any text, a header's included.
    """
    if column is not None or len(header) != 1 or kind == "delivery_track_ids":
        return False
    try:
        parse_id(kind, header[0])
    except ValueError:
        return False
    return True


def _chain_record(
    first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


def _read_kind_id_csv(
    source: Source, lines: Iterator[str], inputs: InputSet, reading: _Reading
) -> None:
    """The ``kind,id[,...]`` form: a failed file, or any CSV with those columns."""
    records = iter(_Records(lines, ["kind", "id"], reading.delimiter))
    first = next(records, None)
    if first is None:
        return
    number, header = first
    kind_at = _find_column(source, header, "kind", number, explicit=True)
    id_at = _find_column(source, header, "id", number, explicit=True)
    for number, cells in records:
        where = f"{source.name}:{number}"
        if len(cells) <= max(kind_at, id_at):
            inputs.bad(where, f"{len(cells)} fields where the header has {len(header)}")
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
        inputs.keep(kind, value, reading.shard)
