"""The three output formats, written a batch at a time and read back.

Rows are encoded with msgspec: JSON lines and the JSON array are msgspec's
own encoding of [`DetailedReport`][organik_async.DetailedReport]; CSV cells come from
``msgspec.to_builtins``, so dates read the same in every format
(``2016-11-02T11:47:38``, the provider's local time, as the rows carry it).
CSV adds the status name and the failure reason beside the codes.

Reading back is what ``--resume``, ``summarize`` and ``merge`` need: the rows
of a file this command wrote, with the byte offset where each one ends, so
that a run can be checked against its journal and cut back to the last whole
batch. `RowReader` decodes only the fields a summary needs; `ReportReader`
decodes whole rows, for ``merge`` to write them again.
"""

from __future__ import annotations

import abc
import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Final, Generic, Literal, TypeVar, cast

import msgspec

from organik_async import DeliveryStatus, DetailedReport

from ._inputs import InputError

__all__ = [
    "CSV_FIELDS",
    "FORMATS",
    "OutputFormat",
    "OutputProblem",
    "ReportReader",
    "RowDigest",
    "RowEncoder",
    "RowReader",
    "format_for",
    "track_key",
]

OutputFormat = Literal["jsonl", "csv", "json"]
FORMATS: Final = ("jsonl", "csv", "json")
_SUFFIXES: Final[dict[str, OutputFormat]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".json": "json",
}
CSV_FIELDS: Final = (
    "gsm",
    "transaction_id",
    "gsm_track_id",
    "delivery_track_id",
    "create_date",
    "start_date",
    "finish_date",
    "status",
    "status_name",
    "sms_count",
    "credit_amount",
    "is_foreign_gsm",
    "errorcode",
    "failure_reason",
)
_JSON_OPEN: Final = b"[\n"
_JSON_SEPARATOR: Final = b",\n"
_JSON_CLOSE: Final = b"\n]\n"


def format_for(path: str, explicit: str | None) -> OutputFormat:
    """``--format`` if given, else the output's extension; stdout is JSON lines."""
    if explicit is not None:
        return cast(OutputFormat, explicit)
    if path == "-":
        return "jsonl"
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the output format of {path!r} from its extension "
            "(.jsonl, .csv or .json): pass --format jsonl|csv|json"
        )
    return fmt


def track_key(value: int | str) -> int | str:
    """One form per ``gsm_track_id``, to tell rows apart: digits are an int."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _status_name(status: int) -> str:
    try:
        return DeliveryStatus(status).name
    except ValueError:
        return "UNKNOWN"


class RowEncoder:
    """Rows to bytes; a file is ``header + encode(batch)... + footer``."""

    def __init__(self, fmt: OutputFormat) -> None:
        self.fmt = fmt
        self._json = msgspec.json.Encoder()
        if fmt == "csv":
            self.header = self._csv_lines([list(CSV_FIELDS)])
        else:
            self.header = _JSON_OPEN if fmt == "json" else b""
        self.footer = _JSON_CLOSE if fmt == "json" else b""

    def encode(self, rows: Sequence[DetailedReport], rows_before: int) -> bytes:
        """The bytes for ``rows``, given how many rows the file already holds."""
        if self.fmt == "csv":
            return self._csv_lines([_csv_cells(row) for row in rows])
        buffer = bytearray()
        for number, row in enumerate(rows, rows_before):
            if self.fmt == "json" and number:
                buffer += _JSON_SEPARATOR
            self._json.encode_into(row, buffer, -1)
            if self.fmt == "jsonl":
                buffer += b"\n"
        return bytes(buffer)

    @staticmethod
    def _csv_lines(records: list[list[object]]) -> bytes:
        text = io.StringIO()
        csv.writer(text).writerows(records)
        return text.getvalue().encode()


def _csv_cells(row: DetailedReport) -> list[object]:
    fields = msgspec.to_builtins(row)
    fields["is_foreign_gsm"] = int(row.is_foreign_gsm)
    fields["status_name"] = _status_name(row.status)
    fields["failure_reason"] = row.failure_reason
    return ["" if (value := fields.get(name)) is None else value for name in CSV_FIELDS]


class RowDigest(msgspec.Struct, frozen=True):
    """What a summary and a resume need from a written row."""

    gsm_track_id: int | str
    status: int
    errorcode: int = 0


class OutputProblem(Exception):
    """A written file holds something this command did not write there."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


R = TypeVar("R", RowDigest, DetailedReport)


class _Rows(abc.ABC, Generic[R]):
    """The rows of a file this command wrote: ``(row, offset after the row)``.

    Iterating stops at the first incomplete line at the end (a run that was
    killed while writing: `incomplete_tail` tells) and raises
    `OutputProblem` on anything else that is not one of our rows.
    `header_end` is where rows start, ``None`` if the header is missing
    or cut short; `closed` says a JSON array was closed. Subclasses say what
    a row is decoded to.
    """

    _json: msgspec.json.Decoder[R]
    _text_errors = "replace"
    """How CSV bytes that are not UTF-8 are read (``strict``: refused)."""

    def __init__(self, stream: BinaryIO, fmt: OutputFormat) -> None:
        self._stream = stream
        self.fmt = fmt
        self.header_end: int | None = None
        self.incomplete_tail = False
        self.closed = False

    @abc.abstractmethod
    def _from_cells(self, cells: list[str]) -> R:
        """A row from its CSV cells (in `CSV_FIELDS` order); ``ValueError`` if it is not one."""

    def __iter__(self) -> Iterator[tuple[R, int]]:
        if self.fmt == "jsonl":
            self.header_end = 0
            return self._jsonl()
        if self.fmt == "json":
            return self._json_array()
        return self._csv()

    def _lines(self) -> Iterator[tuple[int, int, bytes]]:
        """``(line number, offset of its start, raw line)``."""
        offset = 0
        for number, raw in enumerate(self._stream, 1):
            yield number, offset, raw
            offset += len(raw)

    def _jsonl(self) -> Iterator[tuple[R, int]]:
        for number, start, raw in self._lines():
            if not raw.endswith(b"\n"):
                self.incomplete_tail = True
                return
            try:
                row = self._json.decode(raw)
            except msgspec.DecodeError as exc:
                raise OutputProblem(number, f"not a report row ({exc})") from None
            yield row, start + len(raw)

    def _json_array(self) -> Iterator[tuple[R, int]]:
        lines = self._lines()
        first = next(lines, None)
        if first is None or first[2] != _JSON_OPEN:
            if first is not None and _JSON_OPEN.startswith(first[2]):
                self.incomplete_tail = True
                return
            raise OutputProblem(1, "not a JSON array written by organik-report")
        self.header_end = len(_JSON_OPEN)
        for number, start, raw in lines:
            if self.closed:
                raise OutputProblem(number, "text after the end of the JSON array")
            if raw in (b"]\n", b"]"):
                self.closed = True
                continue
            body = raw.rstrip(b"\n")
            if not body:
                continue
            body = body.removesuffix(b",")
            try:
                row = self._json.decode(body)
            except msgspec.DecodeError as exc:
                if not raw.endswith(b"\n"):  # cut short at the end
                    self.incomplete_tail = True
                    return
                raise OutputProblem(number, f"not a report row ({exc})") from None
            yield row, start + len(body)

    def _csv(self) -> Iterator[tuple[R, int]]:
        consumed = 0

        def text_lines() -> Iterator[str]:
            nonlocal consumed
            for number, _, raw in self._lines():
                if not raw.endswith(b"\n"):
                    self.incomplete_tail = True
                    return
                consumed += len(raw)
                try:
                    yield raw.decode("utf-8", self._text_errors)
                except UnicodeDecodeError:
                    raise OutputProblem(number, "not UTF-8 text") from None

        reader = csv.reader(text_lines())
        try:
            header = next(reader, None)
        except csv.Error:
            header = None
        if header is None:
            return
        if tuple(header) != CSV_FIELDS:
            raise OutputProblem(1, "not a CSV file written by organik-report (other columns)")
        self.header_end = consumed
        while True:
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                if self.incomplete_tail:
                    return
                raise OutputProblem(reader.line_num, f"not CSV ({exc})") from None
            if cells is None:
                return
            if len(cells) != len(CSV_FIELDS):
                raise OutputProblem(
                    reader.line_num, f"{len(cells)} fields, expected {len(CSV_FIELDS)}"
                )
            try:
                row = self._from_cells(cells)
            except ValueError as exc:
                raise OutputProblem(reader.line_num, str(exc)) from None
            yield row, consumed


_AT: Final = {name: CSV_FIELDS.index(name) for name in ("gsm_track_id", "status", "errorcode")}


class RowReader(_Rows[RowDigest]):
    """The rows of a file this command wrote, as [`RowDigest`]s: only the fields a summary
    and a resume need are decoded."""

    _json = msgspec.json.Decoder(RowDigest)

    def _from_cells(self, cells: list[str]) -> RowDigest:
        try:
            return RowDigest(
                track_key(cells[_AT["gsm_track_id"]]),
                int(cells[_AT["status"]]),
                int(cells[_AT["errorcode"]] or 0),
            )
        except ValueError:
            raise ValueError("a status or error code that is not a number") from None


_REPORT_FIELDS: Final = tuple(
    (at, name) for at, name in enumerate(CSV_FIELDS) if name in DetailedReport.__struct_fields__
)
_OPTIONAL_FIELDS: Final = frozenset({"delivery_track_id", "finish_date"})


class ReportReader(_Rows[DetailedReport]):
    """The rows of a file this command wrote, whole: what ``merge`` writes again.

    A CSV row is read back as it was written: its empty optional cells are
    ``None``, a ``gsm_track_id`` of digits is an int (as the provider sends it), and
    the columns CSV adds (``status_name``, ``failure_reason``) are left out, since a
    row computes them. Text that is not UTF-8 is refused, not replaced.
    """

    _json = msgspec.json.Decoder(DetailedReport)
    _text_errors = "strict"

    def _from_cells(self, cells: list[str]) -> DetailedReport:
        fields: dict[str, object] = {}
        for at, name in _REPORT_FIELDS:
            cell = cells[at]
            if name in _OPTIONAL_FIELDS and not cell:
                fields[name] = None
            elif name == "gsm_track_id":
                fields[name] = track_key(cell)
            else:
                fields[name] = cell
        try:
            return msgspec.convert(fields, DetailedReport, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"not a report row ({exc})") from None
