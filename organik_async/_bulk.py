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
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from operator import attrgetter
from types import TracebackType
from typing import Final, Generic, Protocol, Self, TypeVar, cast

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from msgspec.structs import replace

from ._exceptions import (
    AuthenticationError,
    BatchFailure,
    BatchOutcome,
    BulkReportError,
    ClientClosedError,
    ClosedDuringCallError,
    EndpointUnreachableError,
    OrganikError,
    TimeoutExpiredError,
)
from ._models import (
    ID_KINDS,
    BatchResult,
    BatchSizes,
    DetailedReport,
    Id,
    IdKind,
    IdSource,
    Progress,
    canonical_id,
    validate_id,
)
from ._ratelimit import ConcurrencyBudget, SizeLimit
from ._requester import CallState, is_too_large
from ._telemetry import NO_CALL, CallSpan, CallTrace

__all__ = [
    "Batches",
    "BulkOptions",
    "BulkRun",
    "Fetch",
    "ReportStream",
    "Results",
    "Rows",
    "check_sources",
    "collect",
]

_CLOSE_WAIT: Final = 5.0
"""How long a lazy input's ``aclose()`` may take when a call ends early."""

_INT_ONLY: Final = frozenset({int})
_TRACK_ID: Final = attrgetter("gsm_track_id")

T = TypeVar("T")


class Fetch(Protocol):
    """What the engine calls for each batch: one request, with its retries.

    Returns the rows and the attempts made, or raises the last attempt's
    [`OrganikError`][organik_async.OrganikError] (``attempts`` and ``refusals`` set).
    ``on_attempt`` hears each attempt's number and the refusals so far as it is
    sent, so a batch cancelled in flight knows how many were sent; ``batch`` is
    the batch's index in the call.
    """

    def __call__(
        self,
        ids: Mapping[IdKind, Sequence[Id]],
        on_attempt: Callable[[int, int], object],
        batch: int,
    ) -> Awaitable[tuple[list[DetailedReport], int]]: ...


@dataclass(frozen=True, kw_only=True)
class BulkOptions:
    """A call's engine settings, already validated by the client's settings."""

    batch_sizes: BatchSizes
    max_concurrency: int
    fail_fast: bool = False
    dedupe: bool = True
    on_progress: Callable[[Progress], object] | None = None
    timeout: float | None = None
    concurrency: ConcurrencyBudget | None = None
    """The client's adaptive limit, shown in [`Progress`][organik_async.Progress]."""
    sizes: SizeLimit | None = None
    """The client's learned request size: batches refused as too large are split."""
    trace: CallTrace = NO_CALL
    """The call's span (telemetry), around its run."""


class _Batch:
    """Consecutive IDs of one kind; or, for a small call, every ID of every kind."""

    __slots__ = ("ids", "index", "kind", "mixed")

    def __init__(
        self,
        index: int,
        kind: IdKind,
        ids: tuple[Id, ...],
        mixed: dict[IdKind, tuple[Id, ...]] | None = None,
    ) -> None:
        self.index = index
        self.kind = kind
        self.ids = ids
        self.mixed = mixed

    @property
    def parts(self) -> dict[IdKind, tuple[Id, ...]]:
        return {self.kind: self.ids} if self.mixed is None else self.mixed


# --- Reading the input ------------------------------------------------------------------


def check_sources(sources: Mapping[IdKind, object]) -> dict[IdKind, IdSource]:
    """Refuse arguments that are not ID iterables, before anything is sent.

    Sized collections (lists, tuples, sets) are validated whole, up front, so
    a bad ID in a list fails the call before any request; lazy inputs are
    validated as they are read.
    """
    checked: dict[IdKind, IdSource] = {}
    for kind, source in sources.items():
        if isinstance(source, str | bytes | bytearray) or not isinstance(
            source, Iterable | AsyncIterable
        ):
            raise TypeError(
                f"{kind} must be an iterable of IDs (ints or strs), got {type(source).__name__}"
            )
        if (
            isinstance(source, Collection)
            and not isinstance(source, Iterator)
            and set(map(type, source)) != _INT_ONLY  # an int is an ID (a bool is not)
        ):
            for value in source:
                if type(value) is not int:
                    validate_id(value, kind)
        checked[kind] = source
    return checked


class _Dedupe:
    """What ``dedupe`` remembers: each input ID read once, each ``gsm_track_id`` yielded once.

    Asked by GSM track ID, a row's ``gsm_track_id`` *is* an input ID, so one
    set serves both promises: a GSM track ID read from the input waits in
    ``unanswered`` until a row with that ``gsm_track_id`` is yielded, then
    moves to ``answered``. A million GSM track IDs cost one set of a million,
    not two (one of IDs read, one of rows yielded). ``others`` holds every
    other ``gsm_track_id`` yielded: rows asked for by transaction or delivery
    track ID, and rows a provider sent that no GSM track ID read so far asked for.

    The three sets are disjoint. The GSM track IDs read are ``unanswered |
    answered``; the yielded ``gsm_track_id`` values are ``answered | others``. So a
    row is new exactly when its key is in neither ``answered`` nor ``others``:
    the rule of one set of every ``gsm_track_id`` yielded, whatever the
    provider answers, in which batch and through which kind. Keys are
    canonical (``"123"`` and ``123`` are one ID).
    """

    __slots__ = ("answered", "others", "read", "unanswered")

    def __init__(self) -> None:
        self.read: dict[IdKind, set[Id]] = {"transaction_ids": set(), "delivery_track_ids": set()}
        """Transaction and delivery track IDs read (their rows' keys are not these IDs)."""
        self.unanswered: set[Id] = set()
        self.answered: set[Id] = set()
        self.others: set[Id] = set()

    def for_input(self, kind: IdKind) -> tuple[set[Id], set[Id], set[Id]]:
        """The sets a batcher reading ``kind`` uses: ``(read, answered, others)``.

        An ID is new if it is in neither of the first two. A new one goes to
        ``answered`` if ``others`` holds it (its row was already yielded,
        through another kind), else to ``read``.
        """
        if kind == "gsm_track_ids":
            return self.unanswered, self.answered, self.others
        return self.read[kind], set(), set()

    def new_rows(self, rows: list[DetailedReport]) -> list[DetailedReport]:
        """The rows whose ``gsm_track_id`` was not yielded before (``rows`` itself
        if all are); they now are.

        A batch as a provider answers it (no key twice, and every key an ID
        read and not yet answered, or every key new) is handled by set
        operations on the whole batch; any other, row by row. The big sets
        are given the keys as a list, in the order rows came: track IDs
        rise, and probing a big set in that order is faster than in a small
        set's hash order.
        """
        unanswered, answered, others = self.unanswered, self.answered, self.others
        keys: list[Id] = list(map(_TRACK_ID, rows))
        if not unanswered and not answered:  # no GSM track ID read: others is every key
            if (
                set(map(type, keys)) == _INT_ONLY  # ints are canonical
                and len(set(keys)) == len(keys)
                and others.isdisjoint(keys)
            ):
                others.update(keys)
                return rows
            fresh: list[DetailedReport] = []
            for row, key in zip(rows, keys, strict=True):
                if type(key) is not int:
                    key = canonical_id(key)
                if key not in others:
                    others.add(key)
                    fresh.append(row)
            return fresh
        # Asked by GSM track ID and answered as asked. (No key needs its canonical
        # form: unanswered holds canonical keys only, so a subset of it is canonical.)
        if len(set(keys)) == len(keys) and unanswered.issuperset(keys):
            unanswered.difference_update(keys)
            answered.update(keys)
            return rows
        fresh = []
        for row, key in zip(rows, keys, strict=True):
            if type(key) is not int:
                key = canonical_id(key)
            if key in unanswered:
                unanswered.remove(key)
                answered.add(key)
            elif key in answered or key in others:
                continue
            else:
                others.add(key)
            fresh.append(row)
        return fresh


class _Batcher:
    """Cuts the inputs into batches, lazily, remembering IDs already sent.

    Sync inputs are read with ``islice`` (no per-ID await); async inputs one
    ``__anext__`` at a time. Only one worker reads at a time, so a batch is
    always consecutive IDs of one kind: reading sync inputs never awaits, so it
    cannot be interleaved; an async input is read under a lock.
    """

    def __init__(
        self,
        sources: Mapping[IdKind, IdSource],
        options: BulkOptions,
        dedupe: _Dedupe | None = None,
    ) -> None:
        self._sources: list[tuple[IdKind, IdSource]] = [
            (kind, sources[kind]) for kind in ID_KINDS if kind in sources
        ]
        self._sizes = options.batch_sizes
        self._dedupe = dedupe
        self._validated = frozenset(
            kind
            for kind, source in self._sources
            if isinstance(source, Collection) and not isinstance(source, Iterator)
        )
        lazy = any(isinstance(source, AsyncIterable) for _, source in self._sources)
        self._lock = anyio.Lock() if lazy else None
        self._current: tuple[IdKind, Iterator[Id] | AsyncIterator[Id]] | None = None
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
        if self._lock is None:
            return await self._next_batch()
        async with self._lock:
            return await self._next_batch()

    async def _next_batch(self) -> _Batch | None:
        if self._index == 0 and (mixed := self._mixed()) is not None:
            self._sources, self.exhausted, self._index = [], True, 1
            first = next(iter(mixed))
            return _Batch(0, first, mixed[first], mixed)
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

    def _mixed(self) -> dict[IdKind, tuple[Id, ...]] | None:
        """Every ID in one request, when the inputs are lists of several kinds that fit.

        A request's size is counted per kind as a share of that kind's batch
        size: 10 transaction IDs (of 20) and 125 GSM track IDs (of 250) are
        half a request each, so one full request together.
        """
        sized = [(k, s) for k, s in self._sources if isinstance(s, Collection)]
        if len(sized) < len(self._sources):
            return None  # a lazy input: its length is unknown
        sized = [(k, s) for k, s in sized if len(s)]
        if len(sized) < 2:
            return None
        if sum(len(s) / self._sizes.for_kind(k) for k, s in sized) > 1:
            return None
        mixed: dict[IdKind, tuple[Id, ...]] = {}
        for kind, source in sized:
            ids: list[Id] = []
            self._add_new(kind, source, ids)
            if ids:
                mixed[kind] = tuple(ids)
        return mixed if len(mixed) > 1 else None

    async def _take(
        self, kind: IdKind, iterator: Iterator[Id] | AsyncIterator[Id], size: int
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
            self._add_new(kind, chunk, ids)
        return ids

    def _add_new(self, kind: IdKind, values: Iterable[object], ids: list[Id]) -> None:
        """Append to ``ids`` each of ``values`` not read before, validated once.

        This is the per-ID cost of a call, so it runs once per chunk (up to a
        batch of a sync input), not once per ID. An ``int`` is an ID and its
        own canonical form: a chunk of new ints costs a few set operations;
        any other chunk (a string in it, an ID read before) goes one by one.
        Lists were validated whole by ``check_sources``.
        """
        check = kind not in self._validated
        if self._dedupe is None:
            if check:
                for value in values:
                    if type(value) is not int:
                        validate_id(value, kind)
            ids.extend(cast(Iterable[Id], values))
            return
        read, answered, others = self._dedupe.for_input(kind)
        valid = cast(list[Id], values if type(values) is list else list(values))
        keys = valid
        if set(map(type, valid)) != _INT_ONLY:  # an int is valid, and its own canonical form
            if check:
                valid = [v if type(v) is int else validate_id(v, kind) for v in valid]
            keys = [v if type(v) is int else canonical_id(v) for v in valid]
        if (
            len(set(keys)) == len(keys)
            and read.isdisjoint(keys)
            and (not answered or answered.isdisjoint(keys))
            and (not others or others.isdisjoint(keys))
        ):  # every ID new: the usual case
            read.update(keys)
            ids += valid
            return
        for key, value in zip(keys, valid, strict=True):
            if key in read or key in answered:
                continue
            if key in others:  # its row was already yielded, through another kind
                others.remove(key)
                answered.add(key)
            else:
                read.add(key)
            ids.append(value)

    @property
    def reading_async_input(self) -> bool:
        """Whether an input that may need closing is being read (see `aclose()`)."""
        return self._current is not None and isinstance(self._current[1], AsyncIterator)

    async def aclose(self) -> None:
        """Close the async iterator being read, if the call ends before its end.

        An async generator left half-read would be finalised by the event loop
        later, in a task of its own; closing it here keeps "nothing runs after
        the call" true.
        """
        current, self._current = self._current, None
        if current is not None:
            closer = getattr(current[1], "aclose", None)
            if closer is not None:
                await closer()


def _kind_of(row: DetailedReport, wanted: Mapping[IdKind, set[Id]]) -> IdKind:
    """The first kind whose IDs name ``row`` (the first kind asked, if none does)."""
    for kind, ids in wanted.items():
        value: Id | None
        if kind == "transaction_ids":
            value = row.transaction_id
        elif kind == "delivery_track_ids":
            value = row.delivery_track_id
        else:
            value = row.gsm_track_id
        if value is not None and canonical_id(value) in ids:
            return kind
    return next(iter(wanted))


def _cut(ids: tuple[Id, ...], size: int | None) -> list[tuple[Id, ...]]:
    """``ids`` in consecutive pieces of at most ``size`` (whole when ``None``)."""
    if size is None or len(ids) <= size:
        return [ids]
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _iterate(source: IdSource) -> Iterator[Id] | AsyncIterator[Id]:
    if isinstance(source, AsyncIterable):
        return aiter(source)
    return iter(source)


# --- Running a call ---------------------------------------------------------------------


@dataclass
class _Tally:
    batches_done: int = 0
    rows: int = 0
    failures: list[BatchFailure] = field(default_factory=list)


class BulkRun:
    """One call's batches, workers and bookkeeping."""

    def __init__(
        self,
        fetch: Fetch,
        sources: Mapping[IdKind, IdSource],
        options: BulkOptions,
        call: CallState | None = None,
    ) -> None:
        self._fetch_ids = fetch
        self._options = options
        self._call = CallState() if call is None else call
        """The retries and refusals of the call's requests (the fetch counts them)."""
        self.dedupe = _Dedupe() if options.dedupe else None
        """What ``dedupe`` remembers, shared by the batcher and the rows' consumer."""
        self._batcher = _Batcher(sources, options, self.dedupe)
        self._tally = _Tally()
        self._started = time.perf_counter()
        self._stopping = False
        self._in_flight: dict[int, anyio.CancelScope] = {}
        self._unsent: list[_Batch] = []
        self.fatal: BaseException | None = None
        self._scope: anyio.CancelScope | None = None
        self._reported_total: int | None = None
        self._stop_reason: OrganikError | None = None

    @property
    def batch_count(self) -> int:
        return self._batcher.batches_made

    async def run(self, send: MemoryObjectSendStream[BatchResult]) -> None:
        """Fetch every batch; send results; record failures. Never raises."""
        with self._options.trace.span() as call:
            try:
                await self._run(send)
            finally:
                self._traced(call)

    async def _run(self, send: MemoryObjectSendStream[BatchResult]) -> None:
        try:
            async with send:
                async with anyio.create_task_group() as tg:
                    self._scope = tg.cancel_scope
                    if self._options.timeout is not None:
                        tg.start_soon(self._expire, self._options.timeout)
                    async with anyio.create_task_group() as workers:
                        for _ in range(self._workers()):
                            workers.start_soon(self._worker, send.clone())
                    tg.cancel_scope.cancel()  # the deadline's watch, if any
                await self._finish()
        finally:
            await self._close_input()

    async def run_here(self, results: list[BatchResult]) -> None:
        """`run()` for one worker, in the caller's own task; results appended.

        A call of one batch (or ``max_concurrency=1``) needs no task group, no
        memory stream and no worker task, so it starts none. Only for
        `collect()`, and only when `in_one_task`.
        """

        async def keep(result: BatchResult) -> bool:
            results.append(result)
            return True

        with self._options.trace.span() as call:
            try:
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    await self._work(keep)
                await self._finish()
            finally:
                await self._close_input()
                self._traced(call)

    def _traced(self, call: CallSpan) -> None:
        """What the call did, for its span (nothing is computed unless it is traced)."""
        tally = self._tally
        call.finish(
            rows=tally.rows,
            batches=self.batch_count,
            retries=self._call.retries,
            refusals=self._call.refusals,
            failures=tally.failures,
            error=lambda: self.outcome_error([]),
        )

    async def _close_input(self) -> None:
        if self._batcher.reading_async_input:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_WAIT):
                await self._batcher.aclose()

    @property
    def in_one_task(self) -> bool:
        """Whether the call can run in its caller's task: one worker, no call timeout."""
        return self._options.timeout is None and self._workers() == 1

    async def _finish(self) -> None:
        if self._stopping and self.fatal is None:
            await self._drain()
        if self.fatal is None and self._reported_total != self._batcher.batches_made:
            self._report_progress()  # the total became exact after the last batch

    def _workers(self) -> int:
        """``max_concurrency`` workers, or fewer when the input has fewer batches."""
        estimate = self._batcher.estimate
        workers = self._options.max_concurrency
        return workers if estimate is None else max(1, min(workers, estimate))

    async def _expire(self, seconds: float) -> None:
        """The call's ``timeout``: when it passes, stop as ``fail_fast`` would."""
        await anyio.sleep(seconds)
        self._stop(TimeoutExpiredError(f"the call's timeout of {seconds:g} s expired"))

    async def _worker(self, send: MemoryObjectSendStream[BatchResult]) -> None:
        async def hand_over(result: BatchResult) -> bool:
            try:
                await send.send(result)
            except anyio.BrokenResourceError:
                # The consumer left (asyncio's own task.cancel() closes its end
                # before our task group is cancelled): no one to hand it to.
                return False
            return True

        async with send:
            await self._work(hand_over)

    async def _work(self, deliver: Callable[[BatchResult], Awaitable[bool]]) -> None:
        """Take batches and fetch them until none is left or the call stops."""
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
            if batch.mixed is None:
                result = await self._fetch(batch)
                results = [] if result is None else [result]
            else:
                results = await self._fetch_mixed(batch, batch.mixed)
            for result in results:
                if not await deliver(result):
                    return

    async def _fetch(self, batch: _Batch) -> BatchResult | None:
        """Fetch one batch; one refused for its size is split, and fetched in parts.

        Returns the result for the IDs answered (all of them, normally); IDs left over by a failure
        or a stop are recorded as a [`BatchFailure`][organik_async.BatchFailure].
        """
        started = time.perf_counter()
        sizes = self._options.sizes
        pending = deque(_cut(batch.ids, None if sizes is None else sizes.cap))
        rows: list[DetailedReport] = []
        done: list[Id] = []
        attempts = refusals = current = current_refusals = 0
        part: tuple[Id, ...] = ()

        def count(attempt: int, refused: int) -> None:
            nonlocal current, current_refusals
            current, current_refusals = attempt, refused  # known even if cancelled

        def leftover() -> tuple[Id, ...]:
            return (*part, *(i for p in pending for i in p))

        failure: tuple[BatchOutcome, OrganikError | None] | None = None
        with anyio.CancelScope() as scope:
            self._in_flight[batch.index] = scope
            try:
                while pending:
                    part, current, current_refusals = pending.popleft(), 0, 0
                    cap = None if sizes is None else sizes.cap
                    if cap is not None and len(part) > cap:  # learned since the cut
                        pending.extendleft(reversed(_cut(part, cap)))
                        continue
                    try:
                        got, sent = await self._fetch_part(batch, part, sizes, count)
                    except OrganikError as exc:
                        if sizes is None or len(part) == 1 or not is_too_large(exc):
                            raise
                        attempts, refusals = attempts + exc.attempts, refusals + exc.refusals
                        sizes.refused(len(part))
                        pending.extendleft(reversed(_cut(part, (len(part) + 1) // 2)))
                        continue
                    if got is None:  # the size learned while waiting to probe
                        pending.appendleft(part)
                        continue
                    attempts, refusals = attempts + sent, refusals + current_refusals
                    rows.extend(got)
                    done.extend(part)
                    part = ()
            except AuthenticationError as exc:
                self._abort(exc)  # every other batch would fail the same way
                return None
            except ClientClosedError as exc:  # aclose() during the call
                attempts, refusals = attempts + exc.attempts, refusals + exc.refusals
                failure = ("cancelled", exc)
                self._stop(exc)
            except EndpointUnreachableError as exc:  # every other batch would wait to fail
                attempts, refusals = attempts + exc.attempts, refusals + exc.refusals
                failure = ("failed", exc)
                self._stop(exc)
            except OrganikError as exc:
                attempts, refusals = attempts + exc.attempts, refusals + exc.refusals
                failure = ("failed", exc)
                if self._options.fail_fast:
                    self._stop_fast()
            except Exception as exc:
                self._abort(exc)
                return None
            finally:
                del self._in_flight[batch.index]
        if scope.cancelled_caught:
            attempts, refusals = attempts + current, refusals + current_refusals
            # Stopped while waiting its turn (a limiter, a probe): nothing was sent.
            failure = ("cancelled" if attempts else "not_attempted", self._stop_reason)
        if failure is not None:
            self._fail(batch, failure[0], failure[1], attempts, leftover(), refusals=refusals)
        if not done:
            return None
        self._tally.rows += len(rows)
        if failure is None:
            self._tally.batches_done += 1
            self._report_progress()
        elapsed = time.perf_counter() - started
        return BatchResult(batch.index, batch.kind, tuple(done), rows, attempts, elapsed, refusals)

    async def _fetch_mixed(
        self, batch: _Batch, mixed: dict[IdKind, tuple[Id, ...]]
    ) -> list[BatchResult]:
        """A small call's one request with IDs of several kinds: one result per kind.

        Each row goes to the first kind whose IDs name it (a row reached through
        two kinds is yielded once, as `_unseen()` would leave it anyway).
        """
        started = time.perf_counter()
        attempts = refusals = 0

        def count(attempt: int, refused: int) -> None:
            nonlocal attempts, refusals
            attempts, refusals = attempt, refused

        failure: tuple[BatchOutcome, OrganikError | None] | None = None
        rows: list[DetailedReport] = []
        with anyio.CancelScope() as scope:
            self._in_flight[batch.index] = scope
            try:
                rows, attempts = await self._fetch_ids(mixed, count, batch.index)
            except AuthenticationError as exc:
                self._abort(exc)
                return []
            except ClientClosedError as exc:
                failure = ("cancelled", exc)
                self._stop(exc)
            except OrganikError as exc:
                attempts, refusals, failure = exc.attempts, exc.refusals, ("failed", exc)
            except Exception as exc:
                self._abort(exc)
                return []
            finally:
                del self._in_flight[batch.index]
        if scope.cancelled_caught:
            failure = ("cancelled" if attempts else "not_attempted", self._stop_reason)
        if failure is not None:
            for kind, ids in mixed.items():
                self._fail(batch, failure[0], failure[1], attempts, ids, kind, refusals=refusals)
            return []
        by_kind: dict[IdKind, list[DetailedReport]] = {kind: [] for kind in mixed}
        wanted = {kind: {canonical_id(i) for i in ids} for kind, ids in mixed.items()}
        for row in rows:
            by_kind[_kind_of(row, wanted)].append(row)
        self._tally.rows += len(rows)
        self._tally.batches_done += 1
        self._report_progress()
        elapsed = time.perf_counter() - started
        return [
            BatchResult(batch.index, kind, ids, by_kind[kind], attempts, elapsed, refusals)
            for kind, ids in mixed.items()
        ]

    async def _fetch_part(
        self,
        batch: _Batch,
        ids: tuple[Id, ...],
        sizes: SizeLimit | None,
        count: Callable[[int, int], object],
    ) -> tuple[list[DetailedReport] | None, int]:
        """One request; one of a size not yet seen to work goes alone (a probe).

        Returns ``(None, 0)`` when, while waiting to probe, a smaller size was
        learned: the caller cuts the IDs again before sending anything.
        """
        kind, index = batch.kind, batch.index
        if sizes is None:
            return await self._fetch_ids({kind: ids}, count, index)
        if not sizes.proven(len(ids)):
            async with sizes.probe:
                cap = sizes.cap
                if cap is not None and len(ids) > cap:
                    return None, 0
                if not sizes.proven(len(ids)):  # still unknown: this request is the probe
                    rows, sent = await self._fetch_ids({kind: ids}, count, index)
                    sizes.worked(len(ids))
                    return rows, sent
        rows, sent = await self._fetch_ids({kind: ids}, count, index)
        sizes.worked(len(ids))
        return rows, sent

    def _fail(
        self,
        batch: _Batch,
        outcome: BatchOutcome,
        error: OrganikError | None,
        attempts: int,
        ids: tuple[Id, ...] | None = None,
        kind: IdKind | None = None,
        *,
        refusals: int = 0,
    ) -> None:
        ids = batch.ids if ids is None else ids
        kind = batch.kind if kind is None else kind
        failure = BatchFailure(batch.index, kind, ids, outcome, error, attempts, refusals)
        self._tally.failures.append(failure)
        self._tally.batches_done += 1
        self._report_progress()

    def _stop_fast(self) -> None:
        """``fail_fast``: take no new batch, cancel the ones in flight."""
        self._stopping = True
        for scope in self._in_flight.values():
            scope.cancel()

    def _stop(self, reason: OrganikError) -> None:
        """Stop the call for ``reason`` (the first one wins), as ``fail_fast`` does."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_fast()

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
            for kind, ids in batch.parts.items():
                self._tally.failures.append(BatchFailure(batch.index, kind, ids, "not_attempted"))

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
            retries=self._call.retries,
            failures=len(self._tally.failures),
            elapsed=time.perf_counter() - self._started,
            concurrency=self._concurrency(),
            refusals=self._call.refusals,
        )
        try:
            callback(progress)
        except Exception as exc:  # the caller's bug: stop, and raise it as is
            self._abort(exc)

    def _concurrency(self) -> int:
        limit = self._options.concurrency
        workers = self._options.max_concurrency
        return workers if limit is None else min(workers, limit.limit)

    def outcome_error(self, rows: list[DetailedReport]) -> BaseException | None:
        """The one error a caller sees, if any (the rule of docs/bulk.md, "Which error you see")."""
        if self.fatal is not None:
            return self.fatal
        failures = sorted(self._tally.failures, key=lambda f: f.index)
        if not failures:
            return None
        if self.batch_count == 1 and failures[0].error is not None:
            return failures[0].error
        failed_ids = sum(len(f.ids) for f in failures)
        summary = f"{len(failures)} of {self.batch_count} requests failed ({failed_ids} IDs)"
        reason = self._stop_reason
        if reason is None:
            first = failures[0].error or failures[0].outcome
            return BulkReportError(f"{summary}; first error: {first}", rows=rows, failures=failures)
        cls = ClosedDuringCallError if isinstance(reason, ClientClosedError) else BulkReportError
        return cls(f"the call stopped: {reason.message}; {summary}", rows=rows, failures=failures)


# --- The streaming context managers -----------------------------------------------------


class ReportStream(Generic[T]):
    """A streaming call: ``async with`` it to run the call, iterate what it gives.

    [`OrganikClient.iter_detailed_report()`][organik_async.OrganikClient.iter_detailed_report]
    returns one that gives rows,
    [`OrganikClient.iter_batches()`][organik_async.OrganikClient.iter_batches] one that gives
    [`BatchResult`][organik_async.BatchResult]s:

    ```python
    async with client.iter_detailed_report(transaction_ids=ids) as rows:
        async for row in rows:
            ...
    ```

    The call starts when the block is entered. Results come as requests complete; failed
    batches are raised at the end, after every result, as a
    [`BulkReportError`][organik_async.BulkReportError] (or, for a call of one request, that
    request's error). The context manager is what makes shutdown clean: leaving the block
    early (``break``, an exception, a cancelled caller) cancels every request still in
    flight before the block is left, and nothing runs after it. A stream is entered once;
    iterating it without ``async with`` raises ``TypeError``.
    """

    def __init__(
        self,
        start: Callable[[], BulkRun],
        adapt: Callable[[Results], AsyncIterator[T]],
    ) -> None:
        self._start = start
        self._adapt = adapt
        self._task_group: TaskGroup | None = None
        self._results: Results | None = None

    async def __aenter__(self) -> AsyncIterator[T]:
        if self._task_group is not None:
            raise RuntimeError("a ReportStream can be entered only once")
        run = self._start()
        send, receive = anyio.create_memory_object_stream[BatchResult](0)
        self._results = Results(run, receive)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(run.run, send)
        return self._adapt(self._results)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        assert self._results is not None
        self._task_group.cancel_scope.cancel()  # no-op if the run has finished
        try:
            if exc is not None and isinstance(exc, anyio.get_cancelled_exc_class()):
                return await self._task_group.__aexit__(exc_type, exc, tb)
            # The run never raises, so exiting cleanly cannot add an ExceptionGroup;
            # the block's own exception, if any, then propagates unwrapped.
            await self._task_group.__aexit__(None, None, None)
            return None
        finally:
            self._results.close()  # after the run: a worker never sends to a closed stream

    def __aiter__(self) -> Self:
        raise TypeError(
            "use `async with client.iter_detailed_report(...) as rows: async for row in rows:` "
            "(the context manager stops every request when the block is left)"
        )


# The iterators below are classes, not async generators: an async generator left
# unfinished is finalised by the event loop later, in a task of its own, and
# "nothing runs after the block is left" would not be literally true.


class Results:
    """Batch results as they complete; then the call's error, if it has one."""

    __slots__ = ("_done", "_receive", "_run")

    def __init__(self, run: BulkRun, receive: MemoryObjectReceiveStream[BatchResult]) -> None:
        self._run = run
        self._receive = receive
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchResult:
        if self._done:
            raise StopAsyncIteration
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self.close()
        error = self._run.outcome_error([])
        if error is not None:
            raise error
        raise StopAsyncIteration

    def close(self) -> None:
        self._done = True
        self._receive.close()

    def dedupe(self, wanted: bool) -> _Dedupe | None:
        """The call's memory of what was read and yielded, if ``wanted``."""
        if not wanted:
            return None
        return self._run.dedupe or _Dedupe()  # a run without: rows are still unique


class Rows:
    """``iter_detailed_report``'s rows; with ``dedupe``, each ``gsm_track_id`` once."""

    __slots__ = ("_dedupe", "_pending", "_results")

    def __init__(self, results: Results, dedupe: bool) -> None:
        self._results = results
        self._dedupe = results.dedupe(dedupe)
        self._pending: list[DetailedReport] = []
        """The current batch's rows not yet handed out, last first: each row
        handed out is let go of, so a large batch is not held until its end."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> DetailedReport:
        while not self._pending:
            rows = (await self._results.__anext__()).rows
            self._pending = (rows if self._dedupe is None else self._dedupe.new_rows(rows))[::-1]
        return self._pending.pop()


class Batches:
    """``iter_batches``' results; with ``dedupe``, rows unique across batches and kinds."""

    __slots__ = ("_dedupe", "_results")

    def __init__(self, results: Results, dedupe: bool) -> None:
        self._results = results
        self._dedupe = results.dedupe(dedupe)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchResult:
        result = await self._results.__anext__()
        if self._dedupe is None:
            return result
        rows = self._dedupe.new_rows(result.rows)
        return result if len(rows) == len(result.rows) else replace(result, rows=rows)


async def collect(run: BulkRun) -> list[DetailedReport]:
    """Run to the end and return rows in input order, unique by ``gsm_track_id``.

    Batches complete in any order; sorting them by their place in the input
    makes the result the same for the same call, whatever the timing.
    """
    results: list[BatchResult] = []
    if run.in_one_task:
        await run.run_here(results)
    else:
        send, receive = anyio.create_memory_object_stream[BatchResult](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.run, send)
            async with receive:
                async for result in receive:
                    results.append(result)
    results.sort(key=lambda r: r.index)
    dedupe = run.dedupe or _Dedupe()
    rows: list[DetailedReport] = []
    for result in results:
        rows += dedupe.new_rows(result.rows)
    error = run.outcome_error(rows)
    if error is not None:
        raise error
    return rows
