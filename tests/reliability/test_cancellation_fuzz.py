"""Cancellation fuzz: calls cut short at random moments, by every means, on every API.

A client shared by a web app sees callers go away at any moment: a request
timeout, a client disconnect, a stream left after a few rows, an exception in
the consumer's loop, the app shutting the client down while calls run. Each
iteration here picks, from a seeded ``random.Random``, an API
(``detailed_report``, ``iter_detailed_report``, ``iter_batches``, on the client
or a ``with_options`` view), IDs (a list or a lazy async generator), and a way
to end the call early:

* ``deadline``: a cancel scope with a random deadline around the call;
* ``cancel``: another task cancels the caller's scope after a random delay;
* ``break``: leave the stream after a random number of items;
* ``raise``: an exception in the consumer's loop after a random number of items;
* ``aclose``: another task closes the client after a random delay;
* ``timeout``: the call's own ``timeout=``, random and short.

The simulator, over TCP, adds random latency (some of it ten seconds long, so a
request that is not really cancelled stays visible), slow bodies, retryable
errors and dropped connections. After every iteration: no task is left and none
starts after the block; no request holds a pool or an httpx connection; the
server has no request in flight; a lazy input was closed; no async generator
was left for the event loop to finalise; the call's outcome was one of the
documented ones; and the next call on the same client (or, after ``aclose``,
on a new one) returns the right rows.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio

from organik_async import (
    BatchResult,
    BulkReportError,
    ClientClosedError,
    ClosedDuringCallError,
    DetailedReport,
    Id,
    OrganikClient,
    TimeoutExpiredError,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault, serve
from tests.helpers.connections import busy_connections

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(3_000, seed=31, max_transaction_rows=15)
TX: list[int] = DATASET.transaction_ids
GSM: list[int | str] = list(DATASET.gsm_track_ids())
ITERATIONS = 220  # per backend
MIN_CANCELLED = 150  # per backend: calls really ended early (300 in all, at least)
APIS = ("detailed_report", "iter_detailed_report", "iter_batches")
HOWS = ("deadline", "cancel", "break", "raise", "aclose", "timeout")
SETTLE = 2.0
"""Seconds the server gets to notice a cancelled request; a request not really
cancelled would stay in flight for the ten-second latency some requests get."""

FAULTS = [
    Fault.latency((0.0, 0.04), probability=0.5),
    Fault.latency(10.0, probability=0.03),
    Fault.trickle(chunk_size=512, delay=0.01, probability=0.15),
    Fault.status(503, probability=0.08),
    Fault.provider_error(93, probability=0.04),
    Fault.disconnect(probability=0.03),
]


class Boom(Exception):
    """The consumer's own error, raised inside a stream block."""


@dataclass
class Tally:
    """What the fuzz did, for the assertions at the end and for the README."""

    iterations: int = 0
    cancelled: int = 0
    by_how: dict[str, int] = field(default_factory=dict)
    by_api: dict[str, int] = field(default_factory=dict)

    def count(self, how: str, api: str) -> None:
        self.cancelled += 1
        self.by_how[how] = self.by_how.get(how, 0) + 1
        self.by_api[api] = self.by_api.get(api, 0) + 1


def tasks() -> set[object]:
    """Every task alive on this event loop (trio: walked from the root task)."""
    if sniffio.current_async_library() == "asyncio":
        return set(asyncio.all_tasks())
    import trio

    found: set[object] = set()
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return found


UPSTREAM_GENERATORS = {("httpx/_content.py", "ByteStream.__aiter__")}
"""Async generators of httpx's that httpx itself leaves unfinished when a request
is cancelled while its body is being sent (httpx 0.28: the request body's
``ByteStream.__aiter__``; encode/httpx#3686, fix proposed in encode/httpx#3777).
They are httpx's to close; every other one, ours above all, must never reach
the event loop's finaliser."""


class FinalisedGenerators:
    """Records every async generator the event loop had to finalise: (file, name)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._hooks = sys.get_asyncgen_hooks()

    def __enter__(self) -> FinalisedGenerators:
        first, final = self._hooks

        def record(agen: Any) -> None:
            path = agen.ag_code.co_filename.replace("\\", "/")
            short = "/".join(path.split("/")[-2:])
            self.seen.append((short, agen.__qualname__))
            if final is not None:
                final(agen)

        sys.set_asyncgen_hooks(first, record)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sys.set_asyncgen_hooks(*self._hooks)


class LazyIds:
    """An async generator of IDs that says whether it was closed."""

    def __init__(self, ids: list[Id]) -> None:
        self.ids = ids
        self.started = False
        self.closed = False

    async def __call__(self) -> AsyncIterator[Id]:
        self.started = True
        try:
            for value in self.ids:
                await anyio.lowlevel.checkpoint()
                yield value
        finally:
            self.closed = True


def row_key(row: DetailedReport) -> str:
    return str(row.gsm_track_id)


def expected_rows(arguments: dict[str, list[Id]]) -> list[DetailedReport]:
    return sorted(DATASET.expected(**arguments), key=row_key)


async def settled(fake: FakeOrganikAPI) -> int:
    with anyio.move_on_after(SETTLE):
        while fake.stats.in_flight:  # noqa: ASYNC110 (polling another thread's counter)
            await anyio.sleep(0.005)
    return fake.stats.in_flight


class Fuzz:
    """One backend's run: a server, a client, and the iterations against them."""

    def __init__(self, rng: random.Random, fake: FakeOrganikAPI, base_url: str) -> None:
        self.rng = rng
        self.fake = fake
        self.base_url = base_url
        self.client = self.new_client()
        self.tally = Tally()

    def new_client(self) -> OrganikClient:
        return OrganikClient(
            self.fake.api_key,
            base_url=self.base_url,
            max_retries=6,
            backoff_base=0.01,  # real, short waits: a cancellation can land in one
            max_concurrency=4,
        )

    def pick_ids(self) -> dict[str, list[Id]]:
        rng = self.rng
        arguments: dict[str, list[Id]] = {}
        if rng.random() < 0.7:
            arguments["transaction_ids"] = list(rng.sample(TX, rng.randint(1, 24)))
        if not arguments or rng.random() < 0.3:
            arguments["gsm_track_ids"] = list(rng.sample(GSM, rng.randint(1, 60)))
        return arguments

    async def iteration(self) -> None:
        rng = self.rng
        api = rng.choice(APIS)
        how = rng.choice(HOWS)
        if api == "detailed_report" and how in ("break", "raise"):
            how = "deadline"
        arguments = self.pick_ids()
        lazy: LazyIds | None = None
        sources: dict[str, Any] = dict(arguments)
        if rng.random() < 0.3:
            kind = rng.choice(sorted(arguments))
            lazy = LazyIds(arguments[kind])
            sources[kind] = lazy()
        options: dict[str, Any] = {}
        target = self.client
        if rng.random() < 0.5:
            target = self.client.with_options(
                batch_sizes=rng.randint(1, 6), max_concurrency=rng.randint(1, 6)
            )
        else:
            options = {"batch_sizes": rng.randint(1, 6), "max_concurrency": rng.randint(1, 6)}
        if how == "timeout":
            options["timeout"] = rng.uniform(0.005, 0.07)
        delay = rng.uniform(0.0, 0.07)
        stop_after = rng.randint(0, 8)

        self.fake.faults[:] = FAULTS
        before = tasks()
        cancelled = await self.run_call(
            target, api, how, arguments, sources, options, delay, stop_after
        )
        after_block = tasks()
        in_pools = self.client._requester.sender.in_flight
        busy = 0 if self.client.is_closed else busy_connections(self.client)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        after_checkpoints = tasks()
        where = f"iteration {self.tally.iterations} ({api}, {how}): "
        assert after_block == before, where + f"tasks left: {after_block - before}"
        assert after_checkpoints == before, where + "a task started after the block"
        assert in_pools == 0, where + "a pool still lent"
        assert busy == 0, where + "an httpx connection still busy"
        assert await settled(self.fake) == 0, where + "the server still has a request"
        if lazy is not None and lazy.started:
            assert lazy.closed, where + "the lazy input was left open"
        if cancelled:
            self.tally.count(how, api)
        self.tally.iterations += 1
        await self.next_call_is_correct(where)

    async def run_call(
        self,
        target: OrganikClient,
        api: str,
        how: str,
        ids: dict[str, list[Id]],
        sources: dict[str, Any],
        options: dict[str, Any],
        delay: float,
        stop_after: int,
    ) -> bool:
        """Make the call and end it as ``how`` says; whether it really ended early."""
        consumed: list[DetailedReport] = []
        batches: list[BatchResult] = []
        left_early = False

        async def consume() -> None:
            nonlocal left_early
            if api == "detailed_report":
                consumed.extend(await target.detailed_report(**sources, **options))
                return
            method = getattr(target, api)
            async with method(**sources, **options) as stream:
                count = 0
                async for item in stream:
                    if how in ("break", "raise") and count == stop_after:
                        left_early = True
                        if how == "raise":
                            raise Boom
                        break
                    count += 1
                    if isinstance(item, BatchResult):
                        batches.append(item)
                        consumed.extend(item.rows)
                    else:
                        consumed.append(item)

        closed: BaseException | None = None
        timed_out: BaseException | None = None
        outer_cancelled = False
        with anyio.fail_after(15):
            deadline = delay if how == "deadline" else 1.0  # a safety net for the others
            with anyio.move_on_after(deadline) as scope:
                async with anyio.create_task_group() as tg:

                    async def cut() -> None:
                        await anyio.sleep(delay)
                        if how == "cancel":
                            scope.cancel()
                        else:
                            await target.aclose()

                    if how in ("cancel", "aclose"):
                        tg.start_soon(cut)
                    try:
                        await consume()
                    except Boom:
                        assert how == "raise"
                    except ClientClosedError as exc:
                        assert how == "aclose", repr(exc)
                        closed = exc
                    except (TimeoutExpiredError, BulkReportError) as exc:
                        assert how == "timeout", repr(exc)
                        assert "timeout" in str(exc), repr(exc)
                        timed_out = exc
                    tg.cancel_scope.cancel()  # the call ended first: no cut
            outer_cancelled = scope.cancelled_caught

        if how == "aclose" and not self.client.is_closed:
            await self.client.aclose()  # the call won the race: close it now anyway
        if how == "aclose":
            await self.after_close(target, api, closed, ids, batches)
        if closed is None and timed_out is None and not outer_cancelled and not left_early:
            # The call ran to its end: it must have been right.
            assert sorted(consumed, key=row_key) == expected_rows(ids), f"{api}: wrong rows"
        if isinstance(timed_out, BulkReportError):
            self.check_accounted(timed_out, ids, batches, api)
        return outer_cancelled or left_early or closed is not None or timed_out is not None

    async def after_close(
        self,
        target: OrganikClient,
        api: str,
        closed: BaseException | None,
        ids: dict[str, list[Id]],
        batches: list[BatchResult],
    ) -> None:
        """``aclose()`` during the call: one documented error, and a client to replace."""
        assert target.is_closed
        assert self.client.is_closed  # a view and its client close together
        if isinstance(closed, BulkReportError):
            assert isinstance(closed, ClosedDuringCallError)
            self.check_accounted(closed, ids, batches, api)
        with pytest.raises(ClientClosedError):
            await self.client.detailed_report(transaction_ids=TX[:1])
        self.client = self.new_client()

    def check_accounted(
        self,
        error: BulkReportError,
        ids: dict[str, list[Id]],
        batches: list[BatchResult],
        api: str,
    ) -> None:
        """Every ID of a stopped call is in a result or a failure: nothing lost."""
        failed: dict[str, list[str]] = {}
        for failure in error.failures:
            failed.setdefault(failure.kind, []).extend(str(i) for i in failure.ids)
        for kind, wanted in ids.items():
            mine = failed.get(kind, [])
            assert set(mine) <= {str(i) for i in wanted}, f"{kind}: a failure names a stranger"
            if api == "iter_batches":
                done = [str(i) for b in batches if b.kind == kind for i in b.ids]
                assert sorted(done + mine) == sorted(str(i) for i in wanted), f"{kind}: each once"
            elif api == "detailed_report":
                attr = "transaction_id" if kind == "transaction_ids" else "gsm_track_id"
                answered = {str(getattr(row, attr)) for row in error.rows}
                missing = {str(i) for i in wanted} - answered - set(mine)
                assert not missing, f"{kind}: IDs neither answered nor failed: {missing}"

    async def next_call_is_correct(self, where: str) -> None:
        self.fake.faults.clear()
        check: dict[str, list[Id]] = {"transaction_ids": list(self.rng.sample(TX, 3))}
        with anyio.fail_after(10):
            rows = await self.client.detailed_report(transaction_ids=check["transaction_ids"])
        assert sorted(rows, key=row_key) == expected_rows(check), where + "the next call"

    async def aclose(self) -> None:
        await self.client.aclose()


@pytest.mark.slow
async def test_random_cancellations_leave_nothing_behind(anyio_backend: str) -> None:
    rng = random.Random(f"organik-cancellation-fuzz/{anyio_backend}")
    fake = FakeOrganikAPI(DATASET, seed=rng.randrange(2**32))
    with FinalisedGenerators() as finalised:
        async with serve(fake, shutdown_timeout=1) as base_url:
            fuzz = Fuzz(rng, fake, base_url)
            try:
                with anyio.fail_after(110):
                    for _ in range(ITERATIONS):
                        await fuzz.iteration()
            finally:
                await fuzz.aclose()
    tally = fuzz.tally
    assert tally.iterations == ITERATIONS
    assert tally.cancelled >= MIN_CANCELLED, tally
    assert set(tally.by_how) == set(HOWS), tally
    assert set(tally.by_api) == set(APIS), tally
    left = set(finalised.seen) - UPSTREAM_GENERATORS
    assert not left, f"async generators left to the event loop: {left}"


@pytest.mark.parametrize("api", APIS)
async def test_closing_at_each_step_of_a_call_ends_it_with_client_closed_error_only(
    api: str,
) -> None:
    """The race the fuzz found, pinned: ``aclose()`` after exactly ``n`` checkpoints.

    A request taking a pool slot passes a cancel-shielded checkpoint; closing
    the client at that moment let it reach the closed httpx pool, and httpx's
    bare ``RuntimeError`` escaped (at 5 to 8 checkpoints into a call here).
    Sweeping ``n`` over the whole start of a call closes it at every one of its
    awaits in turn: the call either completes or raises ``ClientClosedError``.
    """
    fake = FakeOrganikAPI(DATASET)
    ids = TX[:3]
    outcomes: dict[int, str] = {}
    for n in range(60):
        client = fake.client(batch_sizes=1, max_concurrency=2)

        async def call(n: int = n, client: OrganikClient = client) -> None:
            try:
                if api == "detailed_report":
                    await client.detailed_report(transaction_ids=ids)
                else:
                    async with getattr(client, api)(transaction_ids=ids) as stream:
                        async for _item in stream:
                            pass
                outcomes[n] = "completed"
            except ClientClosedError:
                outcomes[n] = "ClientClosedError"

        with anyio.fail_after(5):
            async with client, anyio.create_task_group() as tg:
                tg.start_soon(call)
                for _ in range(n):
                    await anyio.lowlevel.checkpoint()
                await client.aclose()
        assert client._requester.sender.in_flight == 0
        assert fake.stats.in_flight == 0
    assert set(outcomes.values()) == {"ClientClosedError", "completed"}
    assert len(outcomes) == 60
