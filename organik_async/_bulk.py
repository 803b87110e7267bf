"""Batching, bounded fan-out, streaming, and failures accounted for by ID.

A call's IDs are read lazily, kind by kind (transaction, delivery track, GSM
track), cut into batches, and fetched by ``max_concurrency`` workers. Each
finished batch goes to the consumer through an unbuffered stream: when the
consumer is slow, workers wait with their one result, stop taking batches,
and the input stops being read. Memory is therefore bounded by
``max_concurrency`` responses, whatever the number of IDs.

Tasks never raise. A worker records what went wrong (a failed batch, or a
fatal error such as a bad key), and the run raises once its task group has
exited, so callers see typed errors and never an ``ExceptionGroup``.

Every input ID ends in exactly one place: a successful batch, a failed batch,
or (after ``fail_fast``) a batch that was cancelled in flight or never sent.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Generic, Literal, Self, TypeVar

import anyio
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._codec import ID_KINDS, canonical_id, validate_id
from ._exceptions import AuthenticationError, BulkReportError, OrganikError
from ._models import DetailedReport
from ._ratelimit import RateLimiter
from ._retry import RetryPolicy

if TYPE_CHECKING:
    from ._client import OrganikClient

__all__ = [
    "BatchFailure",
    "BatchResult",
    "BatchSizes",
    "IdSource",
    "Progress",
    "ReportStream",
]

Id = int | str
IdSource = Iterable[Id] | AsyncIterable[Id]
"""What each ID argument accepts: any iterable or async iterable of IDs."""

T = TypeVar("T")


class BatchSizes(msgspec.Struct, frozen=True, kw_only=True):
    """IDs per request, per ID kind.

    Conservative, because the provider documents no limit: a transaction or a
    delivery track ID can stand for thousands of recipient numbers (rows), so
    those batches are small; a GSM track ID is one row.
    """

    transaction_ids: int = 20
    delivery_track_ids: int = 20
    gsm_track_ids: int = 250

    def __post_init__(self) -> None:
        for kind in ID_KINDS:
            if getattr(self, kind) < 1:
                raise ValueError(f"batch size for {kind} must be >= 1")

    @classmethod
    def coerce(cls, value: BatchSizes | int) -> BatchSizes:
        """An int means the same size for every kind."""
        if isinstance(value, BatchSizes):
            return value
        return cls(transaction_ids=value, delivery_track_ids=value, gsm_track_ids=value)

    def for_kind(self, kind: str) -> int:
        size: int = getattr(self, kind)
        return size


class BatchResult(msgspec.Struct, frozen=True):
    """One successful request: the IDs asked, the rows, attempts and timing."""

    index: int
    kind: str
    ids: tuple[Id, ...]
    rows: list[DetailedReport]
    attempts: int
    elapsed: float

    @property
    def id_arguments(self) -> dict[str, list[Id]]:
        """The IDs as keyword arguments: ``client.detailed_report(**result.id_arguments)``."""
        return {self.kind: list(self.ids)}


BatchOutcome = Literal["failed", "cancelled", "not_attempted"]


class BatchFailure(msgspec.Struct, frozen=True):
    """One batch that did not succeed, with its IDs, so they can be retried.

    ``outcome`` is ``"failed"`` (sent, failed after its retries: ``error`` says
    why), ``"cancelled"`` (in flight when ``fail_fast`` stopped the call) or
    ``"not_attempted"`` (never sent, after ``fail_fast``).
    """

    index: int
    kind: str
    ids: tuple[Id, ...]
    outcome: BatchOutcome
    error: OrganikError | None = None
    attempts: int = 0

    @property
    def attempted(self) -> bool:
        return self.outcome != "not_attempted"

    @property
    def id_arguments(self) -> dict[str, list[Id]]:
        """``await client.detailed_report(**failure.id_arguments)`` retries just these."""
        return {self.kind: list(self.ids)}


class Progress(msgspec.Struct, frozen=True):
    """A snapshot for progress bars and metrics, sent after every batch."""

    batches_done: int
    batches_total: int | None
    """Exact once the input has been read to the end; before that an estimate
    from ``len()`` of sized inputs (duplicates included), or ``None``."""
    rows: int
    retries: int
    failures: int
    elapsed: float


@dataclass(frozen=True, kw_only=True)
class BulkOptions:
    """A call's settings, resolved from the client's defaults and its overrides."""

    batch_sizes: BatchSizes
    max_concurrency: int
    retry: RetryPolicy
    rate_limiter: RateLimiter | None = None
    fail_fast: bool = False
    dedupe: bool = True
    on_progress: Callable[[Progress], object] | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")


class _Batch(msgspec.Struct, frozen=True):
    index: int
    kind: str
    ids: tuple[Id, ...]


# --- Reading the input ------------------------------------------------------------------


def check_sources(sources: dict[str, object]) -> dict[str, IdSource]:
    """Refuse arguments that are not ID iterables, before anything is sent.

    Sized collections (lists, tuples, sets) are validated whole, up front, so
    a bad ID in a list fails the call before any request; lazy inputs are
    validated as they are read.
    """
    checked: dict[str, IdSource] = {}
    for kind, source in sources.items():
        if isinstance(source, str | bytes | bytearray) or not isinstance(
            source, Iterable | AsyncIterable
        ):
            raise TypeError(
                f"{kind} must be an iterable of IDs (ints or strs), got {type(source).__name__}"
            )
        if isinstance(source, Collection) and not isinstance(source, Iterator):
            for value in source:
                validate_id(value, kind)
        checked[kind] = source
    return checked


class _Batcher:
    """Cuts the inputs into batches, lazily, remembering IDs already sent.

    Sync inputs are read with ``islice`` (no per-ID await); async inputs one
    ``__anext__`` at a time. Only one worker reads at a time (a lock), so a
    batch is always consecutive IDs of one kind.
    """

    def __init__(self, sources: dict[str, IdSource], options: BulkOptions) -> None:
        self._sources: list[tuple[str, IdSource]] = [
            (kind, sources[kind]) for kind in ID_KINDS if kind in sources
        ]
        self._sizes = options.batch_sizes
        self._seen: dict[str, set[Id]] | None = (
            {kind: set() for kind in ID_KINDS} if options.dedupe else None
        )
        self._lock = anyio.Lock()
        self._current: tuple[str, Iterator[Id] | AsyncIterator[Id]] | None = None
        self._index = 0
        self.exhausted = False
        self.estimate = self._estimate()

    def _estimate(self) -> int | None:
        total = 0
        for kind, source in self._sources:
            if not isinstance(source, Collection):
                return None
            total += math.ceil(len(source) / self._sizes.for_kind(kind))
        return total

    @property
    def batches_made(self) -> int:
        return self._index

    async def next_batch(self) -> _Batch | None:
        """The next batch, or ``None`` when every input is exhausted."""
        async with self._lock:
            while True:
                if self._current is None:
                    if not self._sources:
                        self.exhausted = True
                        return None
                    kind, source = self._sources.pop(0)
                    self._current = (kind, _iterate(source))
                kind, iterator = self._current
                size = self._sizes.for_kind(kind)
                ids = await self._take(kind, iterator, size)
                if len(ids) < size:
                    self._current = None  # this kind is exhausted
                    self.exhausted = not self._sources
                if ids:
                    self._index += 1
                    return _Batch(self._index - 1, kind, tuple(ids))

    async def _take(
        self, kind: str, iterator: Iterator[Id] | AsyncIterator[Id], size: int
    ) -> list[Id]:
        ids: list[Id] = []
        while len(ids) < size:
            if isinstance(iterator, AsyncIterator):
                try:
                    chunk = [await anext(iterator)]
                except StopAsyncIteration:
                    break
            else:
                chunk = list(itertools.islice(iterator, size - len(ids)))
                if not chunk:
                    break
            for value in chunk:
                self._accept(kind, value, ids)
        return ids

    def _accept(self, kind: str, value: object, ids: list[Id]) -> None:
        valid = validate_id(value, kind)
        if self._seen is not None:
            key = canonical_id(valid)
            seen = self._seen[kind]
            if key in seen:
                return
            seen.add(key)
        ids.append(valid)


def _iterate(source: IdSource) -> Iterator[Id] | AsyncIterator[Id]:
    if isinstance(source, AsyncIterable):
        return aiter(source)
    return iter(source)


# --- Running a call ---------------------------------------------------------------------


@dataclass
class _Tally:
    batches_done: int = 0
    rows: int = 0
    retries: int = 0
    failures: list[BatchFailure] = field(default_factory=list)


class BulkRun:
    """One call's batches, workers and bookkeeping."""

    def __init__(
        self, client: OrganikClient, sources: dict[str, IdSource], options: BulkOptions
    ) -> None:
        self._client = client
        self._options = options
        self._batcher = _Batcher(sources, options)
        self._tally = _Tally()
        self._started = time.perf_counter()
        self._stopping = False
        self._in_flight: dict[int, anyio.CancelScope] = {}
        self._unsent: list[_Batch] = []
        self.fatal: BaseException | None = None
        self._scope: anyio.CancelScope | None = None
        self._reported_total: int | None = None

    @property
    def batch_count(self) -> int:
        return self._batcher.batches_made

    async def run(self, send: MemoryObjectSendStream[BatchResult]) -> None:
        """Fetch every batch; send results; record failures. Never raises."""
        async with send:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                for _ in range(self._options.max_concurrency):
                    tg.start_soon(self._worker, send.clone())
            if self._stopping and self.fatal is None:
                await self._drain()
            if self.fatal is None and self._reported_total != self._batcher.batches_made:
                self._report_progress()  # the total became exact after the last batch

    async def _worker(self, send: MemoryObjectSendStream[BatchResult]) -> None:
        async with send:
            while not self._stopping:
                try:
                    batch = await self._batcher.next_batch()
                except Exception as exc:  # a bad ID in a lazy input, a failing generator
                    self._abort(exc)
                    return
                if batch is None:
                    return
                if self._stopping:
                    self._unsent.append(batch)
                    return
                result = await self._fetch(batch)
                if result is not None:
                    try:
                        await send.send(result)
                    except anyio.BrokenResourceError:
                        # The consumer left (asyncio's own task.cancel() closes its end
                        # before our task group is cancelled): no one to hand it to.
                        return

    async def _fetch(self, batch: _Batch) -> BatchResult | None:
        started = time.perf_counter()
        attempts = 0
        error: OrganikError | None = None
        rows: list[DetailedReport] = []

        def count(attempt: int) -> None:
            nonlocal attempts
            attempts = attempt  # known even if this fetch is cancelled

        with anyio.CancelScope() as scope:
            self._in_flight[batch.index] = scope
            try:
                rows, attempts = await self._client._fetch_batch(
                    {batch.kind: list(batch.ids)},
                    retry=self._options.retry,
                    rate_limiter=self._options.rate_limiter,
                    on_attempt=count,
                )
            except AuthenticationError as exc:
                self._abort(exc)  # every other batch would fail the same way
                return None
            except OrganikError as exc:
                error, attempts = exc, exc.attempts
            except Exception as exc:
                self._abort(exc)
                return None
            finally:
                del self._in_flight[batch.index]
        if scope.cancelled_caught:
            self._fail(batch, "cancelled", None, attempts)
            return None
        if error is not None:
            self._fail(batch, "failed", error, attempts)
            if self._options.fail_fast:
                self._stop_fast()
            return None
        self._tally.rows += len(rows)
        self._tally.retries += attempts - 1
        self._tally.batches_done += 1
        self._report_progress()
        elapsed = time.perf_counter() - started
        return BatchResult(batch.index, batch.kind, batch.ids, rows, attempts, elapsed)

    def _fail(
        self, batch: _Batch, outcome: BatchOutcome, error: OrganikError | None, attempts: int
    ) -> None:
        failure = BatchFailure(batch.index, batch.kind, batch.ids, outcome, error, attempts)
        self._tally.failures.append(failure)
        self._tally.retries += max(0, attempts - 1)
        self._tally.batches_done += 1
        self._report_progress()

    def _stop_fast(self) -> None:
        """``fail_fast``: take no new batch, cancel the ones in flight."""
        self._stopping = True
        for scope in self._in_flight.values():
            scope.cancel()

    def _abort(self, exc: BaseException) -> None:
        """A fatal error: stop everything; the call raises ``exc`` as is."""
        if self.fatal is None:
            self.fatal = exc
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()

    async def _drain(self) -> None:
        """After ``fail_fast``: every ID not yet sent is reported as not attempted."""
        pending = list(self._unsent)
        try:
            while (batch := await self._batcher.next_batch()) is not None:
                pending.append(batch)
        except Exception as exc:
            self._abort(exc)
            return
        for batch in sorted(pending, key=lambda b: b.index):
            self._tally.failures.append(
                BatchFailure(batch.index, batch.kind, batch.ids, "not_attempted")
            )

    def _report_progress(self) -> None:
        callback = self._options.on_progress
        if callback is None:
            return
        total = self._batcher.batches_made if self._batcher.exhausted else self._batcher.estimate
        self._reported_total = total
        progress = Progress(
            batches_done=self._tally.batches_done,
            batches_total=total,
            rows=self._tally.rows,
            retries=self._tally.retries,
            failures=len(self._tally.failures),
            elapsed=time.perf_counter() - self._started,
        )
        try:
            callback(progress)
        except Exception as exc:  # the caller's bug: stop, and raise it as is
            self._abort(exc)

    def outcome_error(self, rows: list[DetailedReport]) -> BaseException | None:
        """The one error a caller sees, if any (see the README's rule)."""
        if self.fatal is not None:
            return self.fatal
        failures = sorted(self._tally.failures, key=lambda f: f.index)
        if not failures:
            return None
        if self.batch_count == 1 and failures[0].error is not None:
            return failures[0].error
        failed_ids = sum(len(f.ids) for f in failures)
        return BulkReportError(
            f"{len(failures)} of {self.batch_count} requests failed ({failed_ids} IDs); "
            f"first error: {failures[0].error or failures[0].outcome}",
            rows=rows,
            failures=failures,
        )


# --- The streaming context managers -----------------------------------------------------


class ReportStream(Generic[T]):
    """``async with`` it to run the call; iterate what it gives to get results.

    The context manager is what makes shutdown clean: leaving the block early
    (``break``, an exception, a cancelled caller) cancels every request still
    in flight before the block is left, and nothing runs after it.
    """

    def __init__(
        self,
        start: Callable[[], BulkRun],
        adapt: Callable[[AsyncIterator[BatchResult]], AsyncIterator[T]],
    ) -> None:
        self._start = start
        self._adapt = adapt
        self._task_group: TaskGroup | None = None
        self._run: BulkRun | None = None

    async def __aenter__(self) -> AsyncIterator[T]:
        if self._task_group is not None:
            raise RuntimeError("a ReportStream can be entered only once")
        self._run = self._start()
        send, receive = anyio.create_memory_object_stream[BatchResult](0)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run.run, send)
        return self._adapt(_results(self._run, receive))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()  # no-op if the run has finished
        if exc is not None and isinstance(exc, anyio.get_cancelled_exc_class()):
            return await self._task_group.__aexit__(exc_type, exc, tb)
        # The run never raises, so exiting cleanly cannot add an ExceptionGroup;
        # the block's own exception, if any, then propagates unwrapped.
        await self._task_group.__aexit__(None, None, None)
        return None

    def __aiter__(self) -> Self:
        raise TypeError(
            "use `async with client.iter_detailed_report(...) as rows: async for row in rows:` "
            "(the context manager stops every request when the block is left)"
        )


async def _results(
    run: BulkRun, receive: MemoryObjectReceiveStream[BatchResult]
) -> AsyncIterator[BatchResult]:
    async with receive:
        async for result in receive:
            yield result
    error = run.outcome_error([])
    if error is not None:
        raise error


def _unseen(rows: list[DetailedReport], seen: set[Id]) -> Iterator[DetailedReport]:
    """The rows whose ``gsm_track_id`` is not in ``seen``, adding theirs to it."""
    for row in rows:
        key = canonical_id(row.gsm_track_id)
        if key not in seen:
            seen.add(key)
            yield row


async def dedupe_rows(
    results: AsyncIterator[BatchResult], dedupe: bool
) -> AsyncIterator[DetailedReport]:
    """Rows as batches complete; with ``dedupe``, each ``gsm_track_id`` once."""
    seen: set[Id] = set()
    async for result in results:
        for row in _unseen(result.rows, seen) if dedupe else result.rows:
            yield row


def batches_as_they_are(results: AsyncIterator[BatchResult]) -> AsyncIterator[BatchResult]:
    """``iter_batches`` hands the results on unchanged."""
    return results


async def collect(run: BulkRun) -> list[DetailedReport]:
    """Run to the end and return rows in input order, unique by ``gsm_track_id``.

    Batches complete in any order; sorting them by their place in the input
    makes the result the same for the same call, whatever the timing.
    """
    results: list[BatchResult] = []
    send, receive = anyio.create_memory_object_stream[BatchResult](0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run.run, send)
        async with receive:
            async for result in receive:
                results.append(result)
    results.sort(key=lambda r: r.index)
    seen: set[Id] = set()
    rows = [row for result in results for row in _unseen(result.rows, seen)]
    error = run.outcome_error(rows)
    if error is not None:
        raise error
    return rows
