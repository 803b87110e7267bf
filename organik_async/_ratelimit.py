"""The throttles a client shares across its calls: rate, concurrency, request size.

The provider documents none of its limits, so the client keeps three budgets
of its own, each one object per client shared by every call (and every
``with_options`` view): `RateLimiter` (requests per second, if set),
`AdaptiveLimit` (requests in flight, tuned by pushback) and
`SizeLimit` (IDs per request, learned from refusals).

`RateLimiter`: each request reserves the next free slot on a timeline
spaced ``1 / rate`` apart and sleeps until it; reserving needs no lock because
nothing awaits between reading and moving the timeline. anyio has no rate
limiter and aiolimiter is asyncio-only, hence these few lines.
"""

from __future__ import annotations

import logging

import anyio

__all__ = ["AdaptiveLimit", "RateLimiter", "SizeLimit"]

logger = logging.getLogger("organik_async")


class RateLimiter:
    """At most ``rate`` requests per second, evenly spaced, for all callers."""

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(
                f"rate_limit must be a positive number of requests per second: {rate!r}"
            )
        self.rate = rate
        self._interval = 1.0 / rate
        self._next_slot: float | None = None

    async def acquire(self) -> None:
        """Wait for this request's slot."""
        now = anyio.current_time()
        slot = now if self._next_slot is None else max(now, self._next_slot)
        self._next_slot = slot + self._interval
        if slot > now:
            await anyio.sleep(slot - now)

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate!r})"


class AdaptiveLimit:
    """How many requests a client keeps in flight, tuned by the provider's pushback.

    The provider documents no concurrency limit, yet answers "too many
    requests" (code 93, HTTP 429, or 503 with ``Retry-After``) when there are
    too many. This is TCP's congestion control for that: start at ``start``
    and grow by one per success (slow start, doubling per round) until the
    first pushback; then halve on pushback (multiplicative decrease, at most
    once per round: the requests already in flight when the limit fell, and
    those answered before a full round of answers at the new limit, say
    nothing new) and grow by one per two rounds of successes (additive
    increase), never above ``ceiling``. One limit per client, shared by all
    its calls, as the rate budget is.
    """

    __slots__ = ("_calm", "_credit", "_limiter", "_round", "_slow_start", "ceiling", "changes")

    def __init__(self, ceiling: int, *, start: int = 8) -> None:
        self.ceiling = ceiling
        self._limiter = anyio.CapacityLimiter(max(1, min(start, ceiling)))
        self._round = 0
        self._slow_start = True
        self._credit = 0.0
        self._calm = 0
        self.changes = 0

    @property
    def limit(self) -> int:
        """The number of requests allowed in flight now."""
        return int(self._limiter.total_tokens)

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed_tokens

    async def acquire(self, token: object) -> int:
        """Wait for room; returns the round the request is sent in."""
        try:  # with room, no checkpoint: the request itself is one, an event-loop turn later
            self._limiter.acquire_on_behalf_of_nowait(token)
        except anyio.WouldBlock:
            await self._limiter.acquire_on_behalf_of(token)
        return self._round

    def release(self, token: object) -> None:
        self._limiter.release_on_behalf_of(token)

    def succeeded(self) -> None:
        """A request was answered: grow (fast while no pushback was ever seen)."""
        self._calm = max(0, self._calm - 1)
        limit = self.limit
        if limit >= self.ceiling:
            return
        self._credit += 1.0 if self._slow_start else 1.0 / (2 * limit)
        if self._credit >= 1.0:
            self._credit = 0.0
            self._set(limit + 1, "more answers than refusals")

    def pushed_back(self, sent_in_round: int) -> None:
        """The provider said "slow down" to a request sent in ``sent_in_round``."""
        if sent_in_round != self._round or self._calm:
            # The limit already fell after this request was sent, or has not yet
            # seen a full round of answers since it fell: this says nothing new.
            return
        self._round += 1
        self._slow_start = False
        self._credit = 0.0
        self._set(max(1, self.limit // 2), "the provider asked to slow down")
        self._calm = self.limit

    def _set(self, limit: int, why: str) -> None:
        if limit == self.limit:
            return
        # Slow start's climb is routine (DEBUG); a change after pushback is news (INFO).
        level = logging.DEBUG if self._slow_start else logging.INFO
        logger.log(level, "concurrency limit %d -> %d: %s", self.limit, limit, why)
        self._limiter.total_tokens = limit
        self.changes += 1

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self.limit}, ceiling={self.ceiling})"


class SizeLimit:
    """The largest number of IDs per request the provider has accepted, learned.

    The provider documents no limit on IDs per request but refuses requests it
    finds too large (code 96, or HTTP 413/414 from a proxy). A refused request
    is split in halves and retried, down to one ID; the largest size that
    worked is remembered for the rest of the call and of the client. Until a
    size has worked, requests larger than every size seen to work go one at a
    time (`probe`), so a whole wave of too-large requests is not refused
    at once.
    """

    __slots__ = ("largest_ok", "probe", "smallest_refused")

    def __init__(self) -> None:
        self.largest_ok = 0
        self.smallest_refused: int | None = None
        self.probe = anyio.Lock()

    @property
    def cap(self) -> int | None:
        """The size to cut requests at, once one was refused; else ``None``."""
        if self.smallest_refused is None:
            return None
        return max(1, self.largest_ok or (self.smallest_refused + 1) // 2)

    def proven(self, size: int) -> bool:
        """Whether a request of ``size`` IDs is known to be accepted (one ID always is:
        a refusal of a single ID is not about size)."""
        return size <= max(1, self.largest_ok)

    def worked(self, size: int) -> None:
        if size > self.largest_ok:
            self.largest_ok = size
            if self.smallest_refused is not None:
                logger.info("requests of %d IDs are accepted; using that size", size)

    def refused(self, size: int) -> None:
        if self.smallest_refused is None or size < self.smallest_refused:
            self.smallest_refused = size
            logger.info(
                "the provider refused a request of %d IDs; splitting it "
                "(a smaller batch_sizes setting avoids these refusals)",
                size,
            )

    def __repr__(self) -> str:
        return f"SizeLimit(largest_ok={self.largest_ok}, smallest_refused={self.smallest_refused})"
