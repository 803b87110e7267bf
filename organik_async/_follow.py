"""Following a campaign until every row is final.

A report is a snapshot: right after sending, most rows are pending (status 0 or 1) and become
delivered, invalid or timed out over minutes or hours. This asks in rounds: the first round by the
caller's IDs, later rounds only for the rows still pending, by their ``gsm_track_id`` (one row each,
the cheapest request there is), with waits that double up to a cap. Rows are yielded once, when they
become final; at the deadline the stream ends by raising
[`StillPendingError`][organik_async.StillPendingError] with the rows still pending, so nothing is
dropped silently.

Like the other streams it is an ``async with`` block and a class-based
iterator (no async generator is left for the event loop to finalise).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import Self

import anyio

from ._exceptions import StillPendingError
from ._models import DetailedReport, Id, IdKind, IdSource, canonical_id
from ._telemetry import NO_CALL, CallSpan, CallTrace

__all__ = ["FollowStream", "RoundFetch"]

logger = logging.getLogger("organik_async")

RoundFetch = Callable[[Mapping[IdKind, IdSource]], Awaitable[list[DetailedReport]]]
"""One round: every row for these IDs (the client's ``detailed_report``)."""


class FollowStream:
    """Rows followed until final: what
    [`OrganikClient.follow_until_final()`][organik_async.OrganikClient.follow_until_final]
    returns.

    ```python
    async with client.follow_until_final(transaction_ids=ids) as rows:
        async for row in rows:
            ...  # delivered, invalid number or timed out
    ```

    Yields each row once, when it is final. Ends when every row is final; at
    the deadline, raises [`StillPendingError`][organik_async.StillPendingError] instead.
    A round's error ends the stream as it would end the call. A stream is entered once;
    iterating it without ``async with`` raises ``TypeError``.
    """

    def __init__(
        self,
        fetch: RoundFetch,
        first: Mapping[IdKind, IdSource],
        *,
        poll_interval: float,
        max_poll_interval: float,
        deadline: float,
        trace: CallTrace = NO_CALL,
    ) -> None:
        self._fetch = fetch
        self._next: Mapping[IdKind, IdSource] | None = first
        self._interval = poll_interval
        self._max_interval = max_poll_interval
        self._deadline_after = deadline
        self._deadline = 0.0
        self._entered = False
        self._ready: Iterator[DetailedReport] = iter(())
        self._pending: dict[Id, DetailedReport] = {}
        self._rounds = 0
        self._trace = trace
        self._span: CallSpan | None = None

    @property
    def rounds(self) -> int:
        """Rounds asked so far (a round is one report call)."""
        return self._rounds

    @property
    def pending(self) -> list[DetailedReport]:
        """The rows not final yet, as last seen: followed by the next round."""
        return list(self._pending.values())

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a follow stream can be entered only once")
        self._entered = True
        self._deadline = anyio.current_time() + self._deadline_after
        self._span = self._trace.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._next = None  # nothing runs after the block: each round is awaited inside it
        if self._span is not None:
            span, self._span = self._span, None
            span.set(
                {
                    "organik.follow.rounds": self._rounds,
                    "organik.follow.pending": len(self._pending),
                }
            )
            span.end(exc)

    def __aiter__(self) -> Self:
        if not self._entered:
            raise TypeError(
                "use `async with client.follow_until_final(...) as rows: async for row in rows:`"
            )
        return self

    async def __anext__(self) -> DetailedReport:
        while True:
            for row in self._ready:
                return row
            if self._next is None:
                raise StopAsyncIteration
            if self._rounds:
                await self._wait()
            await self._round(self._next)

    async def _wait(self) -> None:
        left = self._deadline - anyio.current_time()
        if left <= 0:
            pending = self.pending
            self._next = None
            raise StillPendingError(
                f"{len(pending)} rows still pending after {self._rounds} rounds "
                f"({self._deadline_after:g} s)",
                pending=pending,
            )
        await anyio.sleep(min(self._interval, left))
        self._interval = min(self._interval * 2, self._max_interval)

    async def _round(self, ids: Mapping[IdKind, IdSource]) -> None:
        with self._trace.within(self._span):  # the round's call, beneath the follow's span
            rows = await self._fetch(ids)
        self._rounds += 1
        final: list[DetailedReport] = []
        for row in rows:
            key = canonical_id(row.gsm_track_id)
            if row.is_final:
                if self._rounds == 1 or key in self._pending:
                    final.append(row)
                self._pending.pop(key, None)
            else:
                self._pending[key] = row
        logger.info(
            "round %d: %d rows became final, %d still pending",
            self._rounds,
            len(final),
            len(self._pending),
        )
        self._ready = iter(final)
        self._next = {"gsm_track_ids": list(self._pending)} if self._pending else None
