"""The throttles a client shares across its calls: rate, concurrency, request size.

Every throttle a request passes has one shape, `Throttle`: ``acquire()``
before the request is sent, which returns a `Permit`, and ``release(permit,
outcome)`` once it has ended, told what the answer said (an `Outcome`). The
request path holds a tuple of them and knows nothing else of any, so budgets
kept elsewhere (the shared limits in Redis) plug in beside these.

The provider documents none of its limits, so the client keeps budgets of its
own, each one object per client shared by every call (and every
``with_options`` view): `RateLimiter` (requests per second, if set) and
`AdaptiveLimit` (requests in flight, tuned by pushback) are throttles;
`SizeLimit` (IDs per request, learned from refusals) is the engine's, which
splits requests by it.

`RateLimiter`: each request reserves the next free slot on a timeline
spaced ``1 / rate`` apart and sleeps until it; reserving needs no lock because
nothing awaits between reading and moving the timeline. anyio has no rate
limiter and aiolimiter is asyncio-only, hence these few lines.
"""

from __future__ import annotations

import enum
import logging
from typing import Final, Protocol

import anyio

__all__ = [
    "AdaptiveLimit",
    "ConcurrencyBudget",
    "Outcome",
    "Permit",
    "RateBudget",
    "RateLimiter",
    "SizeLimit",
    "Throttle",
]

logger = logging.getLogger("organik_async")


class Outcome(enum.Enum):
    """How a request ended, as a throttle hears it."""

    ANSWERED = "answered"
    """Rows (zero rows included): the provider served the request."""
    PUSHBACK = "pushback"
    """The provider said "too many, slow down": code 93, HTTP 429, 503 with Retry-After."""
    FAILED = "failed"
    """Any other error: the wire, a timeout, an HTTP or provider error, an undecodable body."""
    CANCELLED = "cancelled"
    """The request was cancelled (a call's timeout, ``aclose()``) before it ended."""


class Permit:
    """What ``acquire()`` hands out and ``release()`` takes back: one per request."""

    __slots__ = ("round", "token")

    def __init__(self, round: int = 0) -> None:
        self.token = self  # a unique holder for limiters that lend on behalf of one
        self.round = round
        """The throttle's round when the request was let through (see `AdaptiveLimit`)."""

    def __repr__(self) -> str:
        return f"<Permit round={self.round}>"


class Throttle(Protocol):
    """Something a request waits on before it is sent and reports to when it ends.

    ``release`` is awaited in a ``finally`` block, also when the request was
    cancelled: a local throttle returns without a checkpoint, and one kept
    remotely shields its own round trip (with a short deadline of its own), so
    a permit always goes back.
    """

    async def acquire(self) -> Permit: ...

    async def release(
        self, permit: Permit, outcome: Outcome, *, retry_after: float | None = None
    ) -> None: ...


class ConcurrencyBudget(Throttle, Protocol):
    """A throttle of requests in flight, whose limit the engine and retries read."""

    @property
    def limit(self) -> int:
        """The number of requests allowed in flight now."""
        ...

    @property
    def in_flight(self) -> int:
        """Requests holding a permit now."""
        ...


class RateBudget(Throttle, Protocol):
    """A throttle of requests per second, whose rate the client shows."""

    @property
    def rate(self) -> float:
        """Requests per second."""
        ...


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

    async def acquire(self) -> Permit:
        """Wait for this request's slot."""
        now = anyio.current_time()
        slot = now if self._next_slot is None else max(now, self._next_slot)
        self._next_slot = slot + self._interval
        if slot > now:
            await anyio.sleep(slot - now)
        return _ANY

    async def release(
        self, permit: Permit, outcome: Outcome, *, retry_after: float | None = None
    ) -> None:
        """Nothing to give back: a slot is spent when it is taken."""

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate!r})"


GROWTH_ROUNDS: Final = 2
"""Rounds of answers (``limit`` answers each) per step up, after the first pushback."""
PROBE_ROUNDS: Final = 8
"""Rounds of answers for the step back up to the limit the last pushback came at."""


class AdaptiveLimit:
    """How many requests a client keeps in flight, tuned by the provider's pushback.

    The provider documents no concurrency limit, yet answers "too many
    requests" (code 93, HTTP 429, or 503 with ``Retry-After``) when there are
    too many. This is TCP's congestion control for that: start at ``start``
    and grow by one per success (slow start, doubling per round) until the
    first pushback; then halve on pushback (multiplicative decrease, at most
    once per round: the requests already in flight when the limit fell, and
    the outcomes before a full round of them at the new limit, say nothing
    new) and grow by one per two rounds of successes (additive increase),
    never above ``ceiling``. The one step back up to the limit that was last
    refused is taken four times more slowly: a provider's cap is usually
    fixed, and probing it at full pace costs one refusal per climb. While
    refusals go on round after round, the limit keeps halving down to one. One
    limit per client, shared by all its calls, as the rate budget is.
    """

    __slots__ = (
        "_calm",
        "_credit",
        "_limiter",
        "_peak",
        "_round",
        "_slow_start",
        "ceiling",
        "changes",
    )

    def __init__(self, ceiling: int, *, start: int = 8) -> None:
        self.ceiling = ceiling
        self._limiter = anyio.CapacityLimiter(max(1, min(start, ceiling)))
        self._round = 0
        self._slow_start = True
        self._credit = 0
        self._calm = 0
        self._peak = 0  # the limit the last pushback came at; 0 before any
        self.changes = 0

    @property
    def limit(self) -> int:
        """The number of requests allowed in flight now."""
        return int(self._limiter.total_tokens)

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed_tokens

    async def acquire(self) -> Permit:
        """Wait for room; the permit records the round the request is sent in."""
        permit = Permit(self._round)
        try:  # with room, no checkpoint: the request itself is one, an event-loop turn later
            self._limiter.acquire_on_behalf_of_nowait(permit)
        except anyio.WouldBlock:
            await self._limiter.acquire_on_behalf_of(permit)
        permit.round = self._round
        return permit

    async def release(
        self, permit: Permit, outcome: Outcome, *, retry_after: float | None = None
    ) -> None:
        """Give the slot back, and learn from the outcome (no checkpoint)."""
        self._limiter.release_on_behalf_of(permit)
        if outcome is Outcome.ANSWERED:
            self.succeeded()
        elif outcome is Outcome.PUSHBACK:
            self.pushed_back(permit.round)

    def succeeded(self) -> None:
        """A request was answered: grow (fast while no pushback was ever seen)."""
        self._calm = max(0, self._calm - 1)
        limit = self.limit
        if limit >= self.ceiling:
            return
        # Answers needed for one more, in whole numbers (the shared limit's script counts
        # the same way, exactly): one in slow start, then rounds of answers.
        if self._slow_start:
            needed = 1
        elif limit + 1 == self._peak:
            needed = PROBE_ROUNDS * limit
        else:
            needed = GROWTH_ROUNDS * limit
        self._credit += 1
        if self._credit >= needed:
            self._credit = 0
            self._set(limit + 1, "more answers than refusals")

    def pushed_back(self, sent_in_round: int) -> None:
        """The provider said "slow down" to a request sent in ``sent_in_round``."""
        if sent_in_round != self._round:
            return  # the limit already fell after this request was sent: nothing new
        if self._calm:
            # Not yet a full round of outcomes at the new limit: this one counts
            # toward it. Refusals that go on past a full round halve it again, so
            # the limit reaches its floor while the provider keeps refusing.
            self._calm -= 1
            return
        self._round += 1
        self._slow_start = False
        self._credit = 0
        self._peak = self.limit
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


_ANY: Permit = Permit()
"""The permit of throttles that keep nothing per request."""
