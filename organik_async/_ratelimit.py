"""A shared requests-per-second budget.

One :class:`RateLimiter` belongs to a client, so every concurrent call of a
web app draws on the same budget. Each request reserves the next free slot on
a timeline spaced ``1 / rate`` apart and sleeps until it; reserving needs no
lock because nothing awaits between reading and moving the timeline. anyio
has no rate limiter and aiolimiter is asyncio-only, hence these few lines.
"""

from __future__ import annotations

import anyio

__all__ = ["RateLimiter"]


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
