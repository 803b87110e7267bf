"""The end-of-run summary: what an operator reads, and ``--summary-json`` for machines.

Rows by delivery status and the most frequent per-number error codes, with
the provider's descriptions; IDs fetched, failed (grouped by cause), skipped
and why; requests, retries, time, rows/s (``--until-final``: rounds and the
requests that followed pending rows, and no rows/s); where the rows, the
journal and the failed IDs went, and whether an existing output was left
unchanged; for ``merge``, the files read and the rows left out as copies. All
in English or Turkish (``--lang``, `_words`). Lines that name a file are
never cut to the terminal's width.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from organik_async import (
    API_ERROR_CODES,
    DELIVERY_ERROR_CODES,
    APIError,
    BatchFailure,
    DecodeError,
    HTTPStatusError,
    ResponseTooLargeError,
    TransportError,
)

from ._sink import Tally
from ._words import Lang, word

__all__ = [
    "FailureGroup",
    "IdCounts",
    "InputFile",
    "Lang",
    "OutputStatus",
    "Summary",
    "failure_fields",
    "group_failures",
    "render",
    "status_rows",
    "write_json",
]

TOP_ERROR_CODES: Final = 10
_STATUS_TEXT: Final[dict[str, dict[int, str]]] = {
    "en": {
        0: "not sent yet",
        1: "handed to the operator",
        2: "delivered",
        3: "invalid number",
        4: "timed out",
    },
    # The provider's own words (seeds/000_3254615d2c902982.txt).
    "tr": {
        0: "henüz gönderilmedi",
        1: "operatöre iletildi",
        2: "alıcıya iletildi",
        3: "hatalı numara",
        4: "zaman aşımı",
    },
}
_UNKNOWN_STATUS: Final = {"en": "unknown status", "tr": "bilinmeyen durum"}
_UNKNOWN_CODE: Final = {"en": "not in the provider's table", "tr": "sağlayıcının tablosunda yok"}


class StatusCount(msgspec.Struct, frozen=True):
    status: int
    description: str
    rows: int


class CodeCount(msgspec.Struct, frozen=True):
    code: int
    description: str
    rows: int


class FailureGroup(msgspec.Struct, frozen=True):
    cause: str
    ids: int
    requests: int


class IdCounts(msgspec.Struct, frozen=True, kw_only=True):
    read: int
    duplicates: int
    other_shards: int
    bad_lines: int
    done_before: int
    fetched: int
    failed: int
    without_rows: int


class InputFile(msgspec.Struct, frozen=True, kw_only=True):
    """``merge``: one file read, its rows, and how many of them were written."""

    path: str
    format: str
    rows: int
    kept: int


OutputStatus = Literal["written", "unchanged", "not_written"]
"""``written``: this run wrote the output; ``unchanged``: an existing output file was left as
it was (a refused key, say); ``not_written``: there is no output (none was created)."""


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the summary says; ``--summary-json`` writes it as is."""

    command: str
    outcome: str
    exit_code: int
    output: str | None
    format: str
    rows_in_output: int
    rows_this_run: int
    output_status: OutputStatus = "written"
    journal: str | None = None
    """The journal left beside the output (what ``--resume`` reads)."""
    duplicate_rows_skipped: int = 0
    by_status: list[StatusCount]
    error_codes: list[CodeCount]
    ids: IdCounts | None = None
    failures: list[FailureGroup] = []
    failed_file: str | None = None
    still_pending: int = 0
    """``--until-final``: rows not final when following ended (in the failed file, not the
    output)."""
    pending_reason: str | None = None
    bad_lines: list[str] = []
    requests: int = 0
    """Every request sent, retries and ``--until-final``'s follow rounds included."""
    retries: int = 0
    """Requests sent again after a fault (a transport error, a timeout, a 5xx...)."""
    refusals: int = 0
    """Answers that said "slow down" (code 93, HTTP 429); each was sent again."""
    rounds: int = 0
    """``--until-final``: rounds that asked again for pending rows."""
    follow_requests: int = 0
    """``--until-final``: the requests of those rounds (counted in `requests` too)."""
    elapsed_seconds: float = 0.0
    rows_per_second: float | None = 0.0
    """``None`` with ``--until-final``: rows over a follow period mean nothing."""
    inputs: list[InputFile] = []
    """``merge``: the files read, in order (`duplicate_rows_skipped`: the rows left out
    because another copy of their ``gsm_track_id`` was written)."""
    conflicts: int = 0
    """``merge``: the ``gsm_track_id``s whose copies differed (the one furthest along
    was written)."""
    notes: list[str] = []


def status_rows(tally: Tally, lang: Lang) -> tuple[list[StatusCount], list[CodeCount]]:
    """Rows by status (every documented status, then unknown ones) and the top codes."""
    texts = _STATUS_TEXT[lang]
    statuses = sorted(set(texts) | set(tally.by_status))
    by_status = [
        StatusCount(s, texts.get(s, f"{_UNKNOWN_STATUS[lang]} {s}"), tally.by_status[s])
        for s in statuses
    ]
    codes: list[CodeCount] = []
    for code, rows in tally.by_errorcode.most_common(TOP_ERROR_CODES):
        entry = DELIVERY_ERROR_CODES.get(code)
        text = _UNKNOWN_CODE[lang] if entry is None else getattr(entry, _ENTRY_FIELD[lang])
        codes.append(CodeCount(code, text, rows))
    return by_status, codes


_ENTRY_FIELD: Final = {"en": "english", "tr": "turkish"}


def failure_fields(failure: BatchFailure) -> tuple[str, int | None, int | None, str]:
    """``(cause, http_status, api_code, reason)`` of a failed batch.

    ``cause`` is short, to group failures by; ``reason`` is the full message
    (already redacted by the client: it never holds the key).
    """
    error = failure.error
    if error is None:
        text = "cancelled in flight" if failure.outcome == "cancelled" else "not attempted"
        return text, None, None, text
    status: int | None = None
    code: int | None = None
    if isinstance(error, APIError):
        status, code = error.status_code, error.code
        if code is None:
            cause = f"HTTP {status}" if status else type(error).__name__
        else:
            cause = f"provider error {code} ({API_ERROR_CODES.get(code, 'unknown code')})"
        reason = error.message
    elif isinstance(error, HTTPStatusError):
        status = error.status_code
        cause = reason = error.message
    elif isinstance(error, TransportError):
        cause = error.message
        reason = f"{error.message}: {error.cause}" if error.cause else error.message
    elif isinstance(error, DecodeError):
        cause = "an answer that could not be decoded"
        reason = error.message
    elif isinstance(error, ResponseTooLargeError):
        cause = "an answer over max_response_bytes (lower --batch-size)"
        reason = error.message
    else:
        cause = type(error).__name__
        reason = error.message
    return cause, status, code, reason


def group_failures(failures: Sequence[BatchFailure]) -> list[FailureGroup]:
    ids: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    for failure in failures:
        cause = failure_fields(failure)[0]
        ids[cause] += len(failure.ids)
        requests[cause] += 1
    return [FailureGroup(cause, n, requests[cause]) for cause, n in ids.most_common()]


def write_json(summary: Summary, path: Path) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(summary)) + b"\n")


# --- Rendering ----------------------------------------------------------------------------

_HEADLINES: Final = {
    "complete": "complete",
    "nothing_to_do": "nothing to fetch: every ID is already in the output",
    "empty_input": "nothing to fetch: the input holds no IDs",
    "failures": "finished with failures",
    "still_pending": "finished with rows still pending",
    "interrupted": "interrupted",
    "authentication_refused": "authentication refused",
    "error": "stopped by an error",
    "summary": "summary",
}
_LABEL_WIDTH: Final = 10


def _n(value: int) -> str:
    return f"{value:,}"


def _line(console: Console, text: str | Text) -> None:
    """One line as it is: wrapped by the terminal, never cut."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _fact(console: Console, label: str, text: str) -> None:
    _line(console, Text.assemble((label.ljust(_LABEL_WIDTH), "dim"), text))


def render(summary: Summary, console: Console, lang: Lang = "en") -> None:
    """The summary on ``console`` (stderr): facts, then tables, then the files to look at."""
    headline = word(_HEADLINES[summary.outcome], lang)
    _line(console, Text(f"organik-report {summary.command}: {headline}", style="bold"))
    _render_facts(summary, console, lang)
    _render_tables(summary, console, lang)
    _render_files(summary, console, lang)


def _render_facts(summary: Summary, console: Console, lang: Lang) -> None:
    _fact(console, word("rows", lang), _rows_text(summary, lang))
    if summary.inputs:
        _render_inputs(summary, console, lang)
    elif summary.duplicate_rows_skipped:
        template = "{rows} rows skipped: already written (reached through another ID kind)"
        _fact(console, "", word(template, lang).format(rows=_n(summary.duplicate_rows_skipped)))
    if summary.ids is not None:
        _render_ids(summary.ids, console, lang)
    if not summary.inputs and (summary.requests or summary.elapsed_seconds):  # merge: none
        values = {
            "requests": _n(summary.requests),
            "retries": _n(summary.retries),
            "refusals": _n(summary.refusals),
            "seconds": f"{summary.elapsed_seconds:,.1f}",
        }
        template = "{requests} ({retries} retried, {refusals} refused) in {seconds} s"
        if summary.rows_per_second is not None:
            template += ", {rate} rows/s"
            values["rate"] = f"{summary.rows_per_second:,.0f}"
        _fact(console, word("requests", lang), word(template, lang).format(**values))
    if summary.rounds:
        template = "{rounds} rounds, {requests} requests for pending rows"
        text = word(template, lang).format(
            rounds=_n(summary.rounds), requests=_n(summary.follow_requests)
        )
        _fact(console, word("follow", lang), text)
    if summary.journal:
        text = word("{path} (what --resume reads)", lang).format(path=summary.journal)
        _fact(console, word("journal", lang), text)


def _rows_text(summary: Summary, lang: Lang) -> str:
    where = summary.output
    if where in (None, "-"):
        where = word("standard output", lang)
    if summary.output_status == "unchanged":
        return word("none written: {where} left unchanged", lang).format(where=where)
    if summary.output_status == "not_written":
        if summary.output in (None, "-"):
            return word("none written", lang)
        return word("none written: {where} not created", lang).format(where=where)
    text = word("{rows} in {where} ({format})", lang).format(
        rows=_n(summary.rows_in_output), where=where, format=summary.format
    )
    if summary.rows_in_output != summary.rows_this_run:
        text += word(", {new} of them new", lang).format(new=_n(summary.rows_this_run))
    return text


def _render_inputs(summary: Summary, console: Console, lang: Lang) -> None:
    """``merge``: each file read, then the rows left out and the copies that differed."""
    label = word("inputs", lang)
    for item in summary.inputs:
        text = word("{path}: {rows} rows ({format}), {kept} kept", lang).format(
            path=item.path, rows=_n(item.rows), format=item.format, kept=_n(item.kept)
        )
        _fact(console, label, text)
        label = ""
    if summary.duplicate_rows_skipped:
        template = "{rows} rows left out: another copy of their gsm_track_id was kept"
        _fact(console, "", word(template, lang).format(rows=_n(summary.duplicate_rows_skipped)))
    if summary.conflicts:
        template = (
            "{keys} gsm_track_ids had copies that differ: kept the one furthest along "
            "(a final status, then the later finish_date)"
        )
        _fact(console, "", word(template, lang).format(keys=_n(summary.conflicts)))


def _render_ids(ids: IdCounts, console: Console, lang: Lang) -> None:
    template = "{fetched} fetched, {failed} failed, {without} matched no row"
    text = word(template, lang).format(
        fetched=_n(ids.fetched), failed=_n(ids.failed), without=_n(ids.without_rows)
    )
    _fact(console, word("IDs", lang), text)
    skipped = [
        (ids.done_before, word("already in the output (resumed)", lang)),
        (ids.duplicates, word("duplicates", lang)),
        (ids.other_shards, word("in other shards", lang)),
        (ids.bad_lines, word("bad lines skipped", lang)),
    ]
    what = ", ".join(f"{_n(n)} {label}" for n, label in skipped if n)
    if what:
        _fact(console, "", word("left out: {what}", lang).format(what=what))


def _table(*headings: tuple[str, bool]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for heading, right in headings:
        table.add_column(heading, justify="right" if right else "left")
    return table


def _render_tables(summary: Summary, console: Console, lang: Lang) -> None:
    if summary.rows_in_output:
        table = _table(
            (word("status", lang), True),
            (word("delivery status", lang), False),
            (word("rows", lang), True),
            (word("share", lang), True),
        )
        for entry in summary.by_status:
            share = 100 * entry.rows / summary.rows_in_output
            table.add_row(
                str(entry.status), Text(entry.description), _n(entry.rows), f"{share:.1f} %"
            )
        console.print(table)
    if summary.error_codes:
        codes = _table(
            (word("errorcode", lang), True),
            (word("most frequent per-number error codes", lang), False),
            (word("rows", lang), True),
        )
        for code in summary.error_codes:
            codes.add_row(str(code.code), Text(code.description), _n(code.rows))
        console.print(codes)
    if summary.failures:
        failed = _table(
            (word("failed because", lang), False),
            (word("IDs", lang), True),
            (word("requests", lang), True),
        )
        for group in summary.failures:
            failed.add_row(Text(group.cause), _n(group.ids), _n(group.requests))
        console.print(failed)


def _render_files(summary: Summary, console: Console, lang: Lang) -> None:
    if summary.still_pending:
        template = (
            "{rows} rows still pending ({reason}): not in the output; their gsm_track_ids "
            "are in the failed file"
        )
        text = word(template, lang).format(
            rows=_n(summary.still_pending), reason=summary.pending_reason
        )
        _line(console, text)
    if summary.failed_file:
        how = (
            word("fetch them with --ids FILE --until-final", lang)
            if summary.still_pending
            else word("re-run with --resume, or fetch them with --ids FILE", lang)
        )
        template = "failed IDs, with their reasons: {path} ({how})"
        _line(console, word(template, lang).format(path=summary.failed_file, how=how))
    for line in summary.bad_lines:
        _line(console, word("skipped {line}", lang).format(line=line))
    for note in summary.notes:
        _line(console, note)
