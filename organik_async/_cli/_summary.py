"""The end-of-run summary: what an operator reads, and ``--summary-json`` for machines.

Rows by delivery status and the most frequent per-number error codes, with
the provider's descriptions in English or Turkish (``--lang``); IDs fetched,
failed (grouped by cause), skipped and why; requests, retries, time, rows/s;
and where the rows and the failed IDs went.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Final

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
from ._words import Lang

__all__ = [
    "FailureGroup",
    "IdCounts",
    "Lang",
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


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the summary says; ``--summary-json`` writes it as is."""

    command: str
    outcome: str
    exit_code: int
    output: str | None
    format: str
    rows_in_output: int
    rows_this_run: int
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
    retries: int = 0
    elapsed_seconds: float = 0.0
    rows_per_second: float = 0.0
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


def _n(value: int) -> str:
    return f"{value:,}"


def render(summary: Summary, console: Console) -> None:
    """The summary on ``console`` (stderr), as tables."""
    where = summary.output if summary.output not in (None, "-") else "standard output"
    console.print(
        f"[bold]organik-report {summary.command}: {_HEADLINES[summary.outcome]}[/bold]",
        highlight=False,
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    rows_text = f"{_n(summary.rows_in_output)} in {where} ({summary.format})"
    if summary.rows_in_output != summary.rows_this_run:
        rows_text += f", {_n(summary.rows_this_run)} of them new"
    facts.add_row("rows", Text(rows_text))
    if summary.duplicate_rows_skipped:
        facts.add_row(
            "",
            f"{_n(summary.duplicate_rows_skipped)} rows skipped: already written "
            "(reached through another ID kind)",
        )
    if summary.ids is not None:
        ids = summary.ids
        facts.add_row(
            "IDs",
            f"{_n(ids.fetched)} fetched, {_n(ids.failed)} failed, "
            f"{_n(ids.without_rows)} matched no row",
        )
        skipped = [
            (ids.done_before, "already in the output (resumed)"),
            (ids.duplicates, "duplicates"),
            (ids.other_shards, "in other shards"),
            (ids.bad_lines, "bad lines skipped"),
        ]
        text = ", ".join(f"{_n(n)} {what}" for n, what in skipped if n)
        if text:
            facts.add_row("", Text(f"left out: {text}"))
    if summary.requests or summary.elapsed_seconds:
        facts.add_row(
            "requests",
            f"{_n(summary.requests)} ({_n(summary.retries)} retries) in "
            f"{summary.elapsed_seconds:,.1f} s, {summary.rows_per_second:,.0f} rows/s",
        )
    console.print(facts)
    if summary.rows_in_output:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
        table.add_column("status", justify="right")
        table.add_column("delivery status")
        table.add_column("rows", justify="right")
        table.add_column("share", justify="right")
        for entry in summary.by_status:
            share = 100 * entry.rows / summary.rows_in_output
            table.add_row(
                str(entry.status), Text(entry.description), _n(entry.rows), f"{share:.1f} %"
            )
        console.print(table)
    if summary.error_codes:
        codes = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        codes.add_column("errorcode", justify="right")
        codes.add_column("most frequent per-number error codes")
        codes.add_column("rows", justify="right")
        for code in summary.error_codes:
            codes.add_row(str(code.code), Text(code.description), _n(code.rows))
        console.print(codes)
    if summary.failures:
        failed = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        failed.add_column("failed because")
        failed.add_column("IDs", justify="right")
        failed.add_column("requests", justify="right")
        for group in summary.failures:
            failed.add_row(Text(group.cause), _n(group.ids), _n(group.requests))
        console.print(failed)
    if summary.still_pending:
        console.print(
            f"{_n(summary.still_pending)} rows still pending ({summary.pending_reason}): "
            "not in the output; their gsm_track_ids are in the failed file",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if summary.failed_file:
        how = (
            "fetch them with --ids FILE --until-final"
            if summary.still_pending
            else "re-run with --resume, or fetch them with --ids FILE"
        )
        console.print(
            f"failed IDs, with their reasons: {summary.failed_file} ({how})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for line in summary.bad_lines:
        console.print(f"skipped {line}", highlight=False, markup=False, soft_wrap=True)
    for note in summary.notes:
        console.print(note, highlight=False, markup=False, soft_wrap=True)
