"""One bulk job, from checked inputs to the summary; ``fetch`` and ``demo`` both run it.

The job runs on any anyio backend. It owns the exit code: 0 every row
fetched; 1 some IDs failed (they are in the failed file); 2 usage or input
error, nothing sent; 3 authentication refused; 130 on SIGINT and 143 on
SIGTERM, the output left whole and resumable; 141 (as if killed by SIGPIPE)
when the reader of standard output goes away, quietly.

Fetching is one function, `fetch_batches()`, the only place that talks
to the client in batches. With ``--until-final`` (`UntilFinal`) only
final rows are written from the batches; the pending ones are then followed
with the client's follow mode (`follow_pending()`) and written as they
become final; those still pending at the deadline go to the failed file.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, get_args

import anyio
from anyio.abc import TaskStatus
from rich.console import Console

from organik_async import (
    AuthenticationError,
    BatchFailure,
    BatchResult,
    BulkReportError,
    DetailedReport,
    FollowStream,
    HTTPStatusError,
    IdKind,
    OrganikClient,
    OrganikError,
    RateLimitError,
    StillPendingError,
)
from organik_async import Progress as ClientProgress
from organik_async._redact import Redactor

from ._formats import OutputFormat, track_key
from ._inputs import COLUMNS, KINDS, Id, IdColumn, InputSet
from ._progress import Bar
from ._sink import PipeClosed, ResumeState, Sink, journal_path, load_resume
from ._summary import (
    IdCounts,
    Lang,
    OutputStatus,
    Summary,
    failure_fields,
    group_failures,
    render,
    status_rows,
    write_json,
)

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILURES",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USAGE",
    "ClientOptions",
    "FollowCounts",
    "Job",
    "Ui",
    "UntilFinal",
    "fetch_batches",
    "follow_pending",
    "run_job",
]

EXIT_OK: Final = 0
EXIT_FAILURES: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = 3
EXIT_SIGINT: Final = 130
EXIT_PIPE: Final = 141
EXIT_SIGTERM: Final = 143
FAILED_FIELDS: Final = ("kind", "id", "outcome", "attempts", "http_status", "api_code", "reason")
MAX_POLL_INTERVAL: Final = 900.0
"""The longest wait between two rounds of ``--until-final`` (the waits double up to it)."""
AT_DEADLINE: Final = "not final at the deadline"


@dataclass(frozen=True, kw_only=True)
class UntilFinal:
    """``--until-final``: follow pending rows, asking every ``poll_interval`` seconds
    (doubling up to `MAX_POLL_INTERVAL`) for at most ``deadline`` seconds."""

    poll_interval: float = 60.0
    deadline: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """The client's settings from the command line; ``None`` keeps the client's default."""

    base_url: str | None = None
    request_format: str = "json"
    response_format: str | None = None
    batch_size: int | None = None
    concurrency: int | None = None
    rate_limit: float | None = None
    retries: int | None = None
    timeout: float | None = None
    http_backend: str = "auto"
    shared_limits: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """More constructor keywords (tests pass ``backoff_base=0``)."""

    def kwargs(self) -> dict[str, Any]:
        chosen = {
            "base_url": self.base_url,
            "request_format": self.request_format,
            "response_format": self.response_format,
            "batch_sizes": self.batch_size,
            "max_concurrency": self.concurrency,
            "rate_limit": self.rate_limit,
            "max_retries": self.retries,
            "timeout": self.timeout,
            "http_backend": self.http_backend,
            "shared_limits": self.shared_limits,
        }
        return {k: v for k, v in chosen.items() if v is not None} | dict(self.extra)


@dataclass
class Ui:
    """Where messages go (stderr), and how much is said."""

    console: Console
    quiet: bool = False
    progress: bool = False
    lang: Lang = "en"
    summary_json: Path | None = None
    secret: str | None = None
    """The API key: scrubbed from every message, in case anything ever held it."""

    def scrub(self, text: str) -> str:
        """``text`` with any run of 8 or more of the key's characters masked, in any case."""
        return _redactor(self.secret).text(text) if self.secret else text

    def say(self, text: str) -> None:
        self.console.print(
            f"organik-report: {self.scrub(text)}", markup=False, highlight=False, soft_wrap=True
        )


@functools.lru_cache(maxsize=4)
def _redactor(secret: str) -> Redactor:
    return Redactor(secret)


@dataclass(frozen=True, kw_only=True)
class Job:
    """A checked job: its IDs, where rows and failures go, and the client's settings."""

    command: str
    inputs: InputSet
    output: Path | None
    fmt: OutputFormat
    failed_path: Path
    resume: bool
    api_key: str
    client: ClientOptions
    rerun: str
    """The command line that resumes this job (shown when it is interrupted)."""
    until_final: UntilFinal | None = None


@dataclass
class _Ending:
    """How the fetching ended (everything but success is recorded here)."""

    signal: int | None = None
    failures: list[BatchFailure] = field(default_factory=list)
    auth: AuthenticationError | None = None
    pipe_closed: bool = False
    unexpected: BaseException | None = None
    still_pending: list[DetailedReport] = field(default_factory=list)
    """``--until-final``: rows not final when following ended."""
    pending_reason: str = AT_DEADLINE


@dataclass
class _Counts:
    batches: int = 0
    requests: int = 0
    retries: int = 0
    """Requests sent again after a fault."""
    refusals: int = 0
    """Answers that said "slow down" (each sent again until its patience ran out)."""
    ids_fetched: int = 0
    ids_without_rows: int = 0

    def attempts(self, attempts: int, refusals: int, *, last_refused: bool = False) -> None:
        """A batch's requests: ``attempts`` in all, ``refusals`` of them refused; the last
        one answered, failed, or (``last_refused``) refused for good."""
        self.requests += attempts
        self.refusals += refusals
        self.retries += max(0, attempts - refusals - (0 if last_refused else 1))


@dataclass
class FollowCounts:
    """What following pending rows cost: rounds, and requests, retries and refusals in them."""

    rounds: int = 0
    requests: int = 0
    retries: int = 0
    refusals: int = 0
    last: dict[int, ClientProgress] = field(default_factory=dict)
    """Each round's last progress report, by round (from 0)."""

    def heard(self, round_index: int, progress: ClientProgress) -> None:
        """A round's progress report: its batches done (each one request, plus its retries)."""
        self.last[round_index] = progress
        self.rounds = max(self.rounds, round_index + 1)
        self.requests = sum(p.batches_done + p.retries + p.refusals for p in self.last.values())
        self.retries = sum(p.retries for p in self.last.values())
        self.refusals = sum(p.refusals for p in self.last.values())


async def fetch_batches(
    client: OrganikClient,
    sources: Mapping[str, IdColumn],
    on_result: Callable[[BatchResult], None],
    on_progress: Callable[[ClientProgress], None],
) -> None:
    """Fetch every batch of ``sources``, handing each result to ``on_result``.

    Raises what the client raises (``BulkReportError`` at the end if batches
    failed). IDs are already deduplicated, so the client is asked not to
    remember them again.
    """

    def feed(kind: str) -> Iterator[Id] | tuple[()]:
        column = sources.get(kind)
        return column.feed() if column is not None else ()

    async with client.iter_batches(
        transaction_ids=feed("transaction_ids"),
        delivery_track_ids=feed("delivery_track_ids"),
        gsm_track_ids=feed("gsm_track_ids"),
        dedupe=False,
        on_progress=on_progress,
    ) as results:
        async for result in results:
            on_result(result)


async def follow_pending(
    client: OrganikClient,
    pending: dict[Id, DetailedReport],
    until: UntilFinal,
    on_final: Callable[[DetailedReport], None],
    counts: FollowCounts | None = None,
) -> str | None:
    """Follow the ``pending`` rows (by ``gsm_track_id``) until final or the deadline.

    Each row that becomes final goes to ``on_final`` and leaves ``pending``;
    ``counts`` counts the rounds and their requests. Returns ``None`` when
    every row became final, else why the rest did not: the deadline, or the
    error that stopped the following (authentication refused and a closed
    pipe are raised as they are).
    """
    counted = counts if counts is not None else FollowCounts()
    stream: FollowStream | None = None

    def heard(progress: ClientProgress) -> None:
        counted.heard(stream.rounds if stream is not None else 0, progress)

    try:
        stream = client.follow_until_final(
            gsm_track_ids=[row.gsm_track_id for row in pending.values()],
            poll_interval=until.poll_interval,
            max_poll_interval=max(MAX_POLL_INTERVAL, until.poll_interval),
            deadline=until.deadline,
            on_progress=heard,
        )
        async with stream as rows:
            async for row in rows:
                pending.pop(track_key(row.gsm_track_id), None)
                on_final(row)
    except StillPendingError:
        return AT_DEADLINE
    except AuthenticationError:
        raise
    except OrganikError as exc:
        return f"not final: following stopped by {type(exc).__name__}: {exc}"
    return AT_DEADLINE if pending else None


async def run_job(
    job: Job,
    ui: Ui,
    *,
    stdout: Callable[[], BinaryIO] = lambda: sys.stdout.buffer,
    handle_signals: bool = True,
) -> int:
    """Run ``job`` to its end and return the exit code. Input errors are raised
    (`InputError`) before anything is sent or written.

    The stages, in order: plan (what is left to fetch, after an earlier run),
    fetch (batches, then ``--until-final``'s following), close the output, and
    conclude (the exit code, the failed file, the summary).
    """
    started = time.perf_counter()
    plan = _plan(job, ui)
    try:
        client = OrganikClient(job.api_key, **job.client.kwargs())
    except AuthenticationError as exc:
        ui.say(f"authentication: {exc}")
        return EXIT_AUTH
    fetching = _Fetching(job, ui, plan, client, stdout)
    await fetching.run(handle_signals)
    if fetching.ending.pipe_closed:
        return EXIT_PIPE
    return _conclude(job, ui, plan, fetching, started)


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """What is left to fetch (each kind's IDs less an earlier run's), and how rows stay unique."""

    state: ResumeState | None
    """What an earlier run left (``--resume``), else ``None``."""
    columns: dict[str, IdColumn]
    track_keys: set[Id] | None
    """The ``gsm_track_id``s written so far, when rows could repeat; ``None`` when they cannot."""


def _plan(job: Job, ui: Ui) -> _Plan:
    """Read back what an earlier run left (``--resume``) and work out what is left to fetch."""
    until = job.until_final
    if job.resume and until is not None:  # the command line refuses it; callers may not
        raise ValueError("an --until-final job cannot be resumed")
    present = [kind for kind, ids in job.inputs.columns.items() if len(ids)]
    state: ResumeState | None = None
    if job.resume:
        assert job.output is not None
        state = load_resume(job.output, job.fmt, present)
        if state.cut:
            ui.say(
                f"resuming: {state.cut:,} bytes after the last whole batch in {job.output} "
                "will be dropped and their batch fetched again"
            )
    kinds = set(present) | (state.kinds if state is not None else set())
    keys: set[Id] | None = None
    if len(kinds) > 1 or until is not None:  # until-final: a row may be seen pending, then final
        keys = state.track_keys if state and state.track_keys is not None else set()
    return _Plan(state=state, columns=_remaining(job.inputs, state), track_keys=keys)


class _Fetching:
    """The fetch stage: batches to the output, then (``--until-final``) the pending rows
    followed until final; how it ended is recorded in `ending`, never raised."""

    def __init__(
        self,
        job: Job,
        ui: Ui,
        plan: _Plan,
        client: OrganikClient,
        stdout: Callable[[], BinaryIO],
    ) -> None:
        self.job = job
        self.ui = ui
        self.plan = plan
        self.client = client
        sizes = {kind: client.batch_sizes.for_kind(kind) for kind in KINDS}
        self.total = sum(math.ceil(len(ids) / sizes[kind]) for kind, ids in plan.columns.items())
        """Batches to fetch."""
        self.sink = Sink(
            output=job.output,
            fmt=job.fmt,
            stdout=stdout,
            resume=plan.state,
            track_keys=plan.track_keys,
            journal=job.until_final is None,
        )
        self.pending: dict[Id, DetailedReport] = {}
        """``--until-final``: the rows seen pending, by ``gsm_track_id``, not written yet."""
        self.counts = _Counts()
        self.follow = FollowCounts()
        self.ending = _Ending()
        self.bar = Bar(
            ui.console,
            enabled=ui.progress and not ui.quiet and self.total > 0,
            total=self.total,
            columns=plan.columns,
            batch_sizes=sizes,
            rows_written=lambda: self.sink.rows_written,
            lang=ui.lang,
        )

    async def run(self, handle_signals: bool) -> None:
        """Fetch, then close the output whole, whatever stopped the fetching."""
        self.bar.start()
        try:
            await _with_signals(self._fetch, self.ending, handle_signals)
        finally:
            self.bar.stop()
            self._close()

    def _close(self) -> None:
        sink = self.sink
        try:
            if self.total == 0:
                sink.open()  # nothing to fetch: still leave a whole (maybe empty) report
            sink.close(pipe_closed=self.ending.pipe_closed)
        except OSError as exc:  # a full disk, say: the journal still says what is whole
            self.ending.unexpected = self.ending.unexpected or exc

    async def _fetch(self) -> None:
        ending = self.ending
        try:
            async with self.client:
                await self._batches()
                if self.job.until_final is not None and self.pending:
                    await self._follow(self.job.until_final)
        except AuthenticationError as exc:
            ending.auth = exc
        except PipeClosed:
            ending.pipe_closed = True
        except OrganikError as exc:
            # A job of one request gets that request's error as is, not a BulkReportError.
            if self.total == 1:
                ending.failures = [_whole_batch_failed(self.plan.columns, exc)]
            else:
                ending.unexpected = exc
        except Exception as exc:
            ending.unexpected = exc

    async def _batches(self) -> None:
        if not self.total:
            return
        try:
            await fetch_batches(self.client, self.plan.columns, self._on_result, self.bar.update)
        except BulkReportError as exc:
            self.ending.failures = list(exc.failures)

    async def _follow(self, until: UntilFinal) -> None:
        if not self.ui.quiet:
            self.ui.say(f"following {len(self.pending):,} pending rows until final")
        reason = await follow_pending(self.client, self.pending, until, self._on_final, self.follow)
        if reason is not None:
            self.ending.pending_reason = reason
            self.ending.still_pending = list(self.pending.values())

    def _on_result(self, result: BatchResult) -> None:
        if self.job.until_final is None:
            self.sink.accept(result)
        else:
            final = _split_pending(result.rows, self.pending, self.plan.track_keys)
            self.sink.accept(result, final)
        counts = self.counts
        counts.batches += 1
        counts.attempts(result.attempts, result.refusals)
        counts.ids_fetched += len(result.ids)
        counts.ids_without_rows += _ids_without_rows(result)

    def _on_final(self, row: DetailedReport) -> None:
        self.sink.write_rows([row])


def _conclude(job: Job, ui: Ui, plan: _Plan, fetching: _Fetching, started: float) -> int:
    """The exit code; the failed file written (or removed); what happened, said; the summary."""
    ending, sink = fetching.ending, fetching.sink
    for failure in ending.failures:
        refused = _is_refusal(failure.error)
        fetching.counts.attempts(failure.attempts, failure.refusals, last_refused=refused)
    code, outcome = _outcome(ending, fetching.total, job.inputs.ids_read)
    if code == EXIT_FAILURES and (ending.failures or ending.still_pending):
        _write_failed(job.failed_path, ending, ui)
    elif code == EXIT_OK:
        job.failed_path.unlink(missing_ok=True)
    _report_ending(job, ui, ending, sink)
    summary = _summary(job, ui, plan.state, fetching, code, outcome, started)
    if ui.summary_json is not None:
        try:
            write_json(summary, ui.summary_json)
        except OSError as exc:
            ui.say(f"cannot write the summary to {ui.summary_json}: {exc.strerror or exc}")
    if not ui.quiet:
        render(summary, ui.console, ui.lang)
    if code in (EXIT_SIGINT, EXIT_SIGTERM) or (code == EXIT_AUTH and sink.rows_written):
        _resume_hint(job, ui)
    return code


async def _with_signals(
    body: Callable[[], Awaitable[None]], ending: _Ending, handle_signals: bool
) -> None:
    """Run ``body``; SIGINT or SIGTERM cancels it, and is recorded in ``ending``.

    The watcher is in place before ``body`` starts, and stays until it is over,
    so a second Ctrl-C during the clean-up does not break it.
    """
    if not handle_signals or sys.platform == "win32":
        await body()
        return
    scope = anyio.CancelScope()

    async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if ending.signal is None:
                    ending.signal = signum
                    scope.cancel()

    async with anyio.create_task_group() as tg:
        await tg.start(watch)
        with scope:
            await body()
        tg.cancel_scope.cancel()


def _remaining(inputs: InputSet, state: ResumeState | None) -> dict[str, IdColumn]:
    """Each kind's IDs, less those an earlier run has done."""
    columns: dict[str, IdColumn] = {}
    for kind in KINDS:
        ids = inputs.columns.get(kind)
        if ids is None or not len(ids):
            continue
        done = state.done.get(kind) if state is not None else None
        columns[kind] = ids.without(done) if done else ids
    return {kind: ids for kind, ids in columns.items() if len(ids)}


def _ids_without_rows(result: BatchResult) -> int:
    """How many of a batch's IDs matched no row (unknown to the provider)."""
    field_name = COLUMNS[result.kind]
    found: set[object] = set()
    for row in result.rows:
        value = getattr(row, field_name)
        found.add(track_key(value) if result.kind == "gsm_track_ids" else value)
    return sum(1 for value in result.ids if value not in found)


def _whole_batch_failed(columns: Mapping[str, IdColumn], error: OrganikError) -> BatchFailure:
    ((name, ids),) = columns.items()
    kind = next(k for k in get_args(IdKind) if k == name)  # the column names are the kinds
    return BatchFailure(0, kind, tuple(ids), "failed", error, error.attempts)


def _outcome(ending: _Ending, total: int, ids_read: int) -> tuple[int, str]:
    if ending.signal is not None:
        code = EXIT_SIGTERM if ending.signal == signal.SIGTERM else EXIT_SIGINT
        return code, "interrupted"
    if ending.auth is not None:
        return EXIT_AUTH, "authentication_refused"
    if ending.unexpected is not None:
        return EXIT_FAILURES, "error"
    if ending.failures:
        return EXIT_FAILURES, "failures"
    if ending.still_pending:
        return EXIT_FAILURES, "still_pending"
    if total:
        return EXIT_OK, "complete"
    return EXIT_OK, "nothing_to_do" if ids_read else "empty_input"


def _split_pending(
    rows: list[DetailedReport], pending: dict[Id, DetailedReport], written: set[Id] | None
) -> list[DetailedReport]:
    """``--until-final``: the final ``rows`` (to write now); the others go to ``pending``."""
    final: list[DetailedReport] = []
    for row in rows:
        key = track_key(row.gsm_track_id)
        if row.is_final:
            final.append(row)
            pending.pop(key, None)
        elif written is None or key not in written:
            pending[key] = row
    return final


def _write_failed(path: Path, ending: _Ending, ui: Ui) -> None:
    """The failed IDs as ``kind,id,...`` CSV (what ``fetch --ids`` reads), written atomically.

    Rows still pending with ``--until-final`` are listed by ``gsm_track_id``,
    outcome ``still_pending``: ``fetch --ids FILE --until-final`` finishes them.
    """
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(FAILED_FIELDS)
    for failure in sorted(ending.failures, key=lambda f: f.index):
        _, status, code, reason = failure_fields(failure)
        for value in failure.ids:
            writer.writerow(
                [
                    COLUMNS[failure.kind],
                    value,
                    failure.outcome,
                    failure.attempts,
                    "" if status is None else status,
                    "" if code is None else code,
                    ui.scrub(reason),
                ]
            )
    for row in ending.still_pending:
        writer.writerow(
            [
                COLUMNS["gsm_track_ids"],
                row.gsm_track_id,
                "still_pending",
                "",
                "",
                "",
                ui.scrub(ending.pending_reason),
            ]
        )
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text.getvalue(), encoding="utf-8")
    os.replace(partial, path)


def _report_ending(job: Job, ui: Ui, ending: _Ending, sink: Sink) -> None:
    if ending.signal is not None:
        name = signal.Signals(ending.signal).name
        where = f" in {job.output}" if job.output is not None else ""
        ui.say(f"stopped by {name}: {sink.rows_written:,} rows written{where}, all whole")
    elif ending.auth is not None:
        ui.say(f"authentication refused: {ending.auth}")
    elif ending.unexpected is not None:
        error = ending.unexpected
        ui.say(f"stopped by an unexpected error: {type(error).__name__}: {error}")
        if job.output is not None and job.until_final is None:
            ui.say("the output is whole; re-run with --resume to finish the job")


def _resume_hint(job: Job, ui: Ui) -> None:
    if job.output is None:
        ui.say("the rows went to standard output, which cannot be resumed: use -o FILE next time")
        return
    if job.until_final is not None:
        ui.say(
            "an --until-final run cannot be resumed (the pending rows were only in memory): "
            "run the same command again, without --resume, to fetch and follow everything"
        )
        return
    stdin = any(source.path == "-" for source in job.inputs.sources)
    more = " (with the same standard input)" if stdin else ""
    ui.say(f"to finish the job, run{more}: {job.rerun}")


def _summary(
    job: Job,
    ui: Ui,
    state: ResumeState | None,
    fetching: _Fetching,
    code: int,
    outcome: str,
    started: float,
) -> Summary:
    sink, counts, ending, follow = fetching.sink, fetching.counts, fetching.ending, fetching.follow
    tally = sink.tally
    if state is not None and not state.restart:
        tally = state.tally.add(tally)
    by_status, error_codes = status_rows(tally, ui.lang)
    elapsed = time.perf_counter() - started
    requests = counts.requests
    rate: float | None = None  # --until-final: rows over a follow period mean nothing
    if job.until_final is None:
        rate = round(sink.rows_written / elapsed, 1) if elapsed > 0 else 0.0
    inputs = job.inputs
    ids = IdCounts(
        read=inputs.ids_read,
        duplicates=inputs.duplicates,
        other_shards=inputs.other_shards,
        bad_lines=inputs.bad_line_count,
        done_before=state.ids_done if state is not None and not state.restart else 0,
        fetched=counts.ids_fetched,
        failed=sum(len(f.ids) for f in ending.failures),
        without_rows=counts.ids_without_rows,
    )
    return Summary(
        command=job.command,
        outcome=outcome,
        exit_code=code,
        output=str(job.output) if job.output is not None else "-",
        format=job.fmt,
        rows_in_output=tally.rows,
        rows_this_run=sink.rows_written,
        output_status=_output_status(job, sink),
        journal=_journal_left(job),
        duplicate_rows_skipped=sink.duplicates,
        by_status=by_status,
        error_codes=error_codes,
        ids=ids,
        failures=group_failures(ending.failures),
        failed_file=(
            str(job.failed_path)
            if code == EXIT_FAILURES and (ending.failures or ending.still_pending)
            else None
        ),
        still_pending=len(ending.still_pending),
        pending_reason=ending.pending_reason if ending.still_pending else None,
        bad_lines=[ui.scrub(line) for line in inputs.bad_lines],
        requests=requests + follow.requests,
        retries=counts.retries + follow.retries,
        refusals=counts.refusals + follow.refusals,
        rounds=follow.rounds,
        follow_requests=follow.requests,
        elapsed_seconds=round(elapsed, 3),
        rows_per_second=rate,
    )


def _is_refusal(error: OrganikError | None) -> bool:
    """Whether ``error`` is the provider's "slow down" (its last attempt was refused)."""
    if isinstance(error, RateLimitError):
        return True
    return (
        isinstance(error, HTTPStatusError)
        and error.status_code == 503
        and (error.retry_after is not None)
    )


def _output_status(job: Job, sink: Sink) -> OutputStatus:
    if sink.opened:
        return "written"
    if job.output is not None and job.output.exists():
        return "unchanged"
    return "not_written"


def _journal_left(job: Job) -> str | None:
    """The journal beside the output, if there is one (``--until-final`` keeps none)."""
    if job.output is None or job.until_final is not None:
        return None
    journal = journal_path(job.output)
    return str(journal) if journal.exists() else None
