"""Where requests wait, and which connection pool carries them.

httpcore's connection pool spends time that grows with the square of the
requests it holds (connections plus waiters) on every assignment, so a single
``httpx.AsyncClient`` with 64 requests in flight is *slower* than one with 8
(encode/httpx#3215). This module keeps every pool small: requests queue in one
fair anyio limiter of our own (O(1) per request), and each pool ever sees at
most ``pool_size`` requests at once. Pools are opened lazily, when all the
open ones are full, so a client that never runs more than a few requests at
once uses one pool, as before.

A caller's own ``httpx.AsyncClient`` (or a custom transport) is a single
pool: we cannot split it, so it is used as is, under the same limiter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx

__all__ = ["PoolSet"]


class PoolSet:
    """A bounded set of small ``httpx.AsyncClient`` pools, filled least-loaded first."""

    def __init__(
        self,
        factory: Callable[[int], httpx.AsyncClient] | None,
        *,
        max_connections: int,
        pool_size: int,
        shared: httpx.AsyncClient | None = None,
    ) -> None:
        if max_connections < 1 or pool_size < 1:
            raise ValueError("max_connections and pool_size must be >= 1")
        self._factory = factory
        self._pool_size = pool_size if shared is None else max_connections
        self._limiter = anyio.CapacityLimiter(max_connections)
        self._pools: list[httpx.AsyncClient] = [] if shared is None else [shared]
        self._loads: list[int] = [] if shared is None else [0]

    @property
    def pools(self) -> tuple[httpx.AsyncClient, ...]:
        """The pools opened so far."""
        return tuple(self._pools)

    @property
    def in_flight(self) -> int:
        """Requests holding a pool right now."""
        return sum(self._loads)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[httpx.AsyncClient]:
        """Wait for a turn, then lend the least-loaded pool for one request."""
        try:  # with room, no checkpoint: the request itself is one
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            await self._limiter.acquire()
        try:
            index = self._pick()
            self._loads[index] += 1
            try:
                yield self._pools[index]
            finally:
                self._loads[index] -= 1
        finally:
            self._limiter.release()

    def _pick(self) -> int:
        # The limiter guarantees some pool (open or openable) has room.
        best = min(range(len(self._loads)), key=self._loads.__getitem__, default=-1)
        if best >= 0 and self._loads[best] < self._pool_size:
            return best
        assert self._factory is not None, "a shared pool is never full under the limiter"
        self._pools.append(self._factory(self._pool_size))
        self._loads.append(0)
        return len(self._pools) - 1

    async def aclose(self, *, close_pools: bool) -> None:
        """Close the pools we opened (never a caller's own client)."""
        if close_pools:
            for pool in self._pools:
                await pool.aclose()
