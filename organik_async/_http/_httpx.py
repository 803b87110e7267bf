"""The httpx backend: portable (asyncio and trio), and the client's public HTTP API.

httpx is what a caller's own ``http_client`` or ``transport`` plugs into, what
respx and pytest-httpx mock, and what runs on trio. Its requests go through a
`PoolSet` of small pools (see ``_pool``: httpcore's pool slows down with the
square of the requests it holds), each lent for one request.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Final, cast

import httpx

from .._exceptions import RequestInfo
from ._base import KEEPALIVE_EXPIRY, Answer, Route, Sender, WireErrors, declared_length, read_capped
from ._pool import PoolSet

__all__ = ["HttpxSender", "pool_limits"]


def _undecodable(exc: BaseException) -> bool:
    return isinstance(exc, httpx.DecodingError)


_ERRORS: Final = WireErrors(
    connect=(httpx.ConnectError,),
    timeout=(httpx.TimeoutException,),
    transport=(httpx.TransportError,),
    undecodable=_undecodable,
)


def pool_limits(size: int) -> httpx.Limits:
    """Limits for one small pool: every connection kept alive (a pool never holds
    more than it needs), idle ones dropped after `KEEPALIVE_EXPIRY`."""
    return httpx.Limits(
        max_connections=size, max_keepalive_connections=size, keepalive_expiry=KEEPALIVE_EXPIRY
    )


class HttpxSender:
    """Requests through httpx: our own small pools, a caller's client, or a transport."""

    name: Final = "httpx"
    errors: Final = _ERRORS

    def __init__(self, pools: PoolSet, *, owns_pools: bool) -> None:
        self.pools = pools
        self._owns_pools = owns_pools
        self._closed = False

    @classmethod
    def build(
        cls,
        *,
        http_client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
        timeout: httpx.Timeout,
        max_connections: int,
        pool_size: int,
        ssl_context: Callable[[], ssl.SSLContext],
    ) -> HttpxSender:
        """Pools of our own, or the caller's ``http_client`` as is, or one
        ``transport`` under pools of ours (a transport is one pool: never split)."""
        if http_client is not None:
            shared = PoolSet(
                None, max_connections=max_connections, pool_size=pool_size, shared=http_client
            )
            return cls(shared, owns_pools=False)
        if transport is not None:
            # follow_redirects stays httpx's default: False, as on every backend.
            pools = PoolSet(
                lambda _size: httpx.AsyncClient(timeout=timeout, transport=transport),
                max_connections=max_connections,
                pool_size=max_connections,
            )
            return cls(pools, owns_pools=True)

        def new_pool(size: int) -> httpx.AsyncClient:
            # One SSL context, made when the first pool opens, serves them all
            # (building one loads the CA store, ~24 ms).
            return httpx.AsyncClient(
                timeout=timeout, verify=ssl_context(), limits=pool_limits(size)
            )

        return cls(
            PoolSet(new_pool, max_connections=max_connections, pool_size=pool_size),
            owns_pools=True,
        )

    def __repr__(self) -> str:
        return f"<HttpxSender pools={len(self.pools.pools)}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        return self.pools.in_flight

    def resolve(self) -> Sender:
        return self

    async def send(
        self, route: Route, body: bytes, *, timeouts: httpx.Timeout, limit: int, info: RequestInfo
    ) -> Answer:
        async with (
            self.pools.acquire() as pool,
            pool.stream(
                "POST", route.url, content=body, headers=route.headers, timeout=timeouts
            ) as response,
        ):
            # aclosing: httpx's chunk iterator is an async generator; closed here, it
            # is never left for the event loop to finalise after a cancellation.
            chunks = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
            async with aclosing(chunks):
                raw, undecodable = await read_capped(
                    chunks, declared_length(response.headers), limit, info, _undecodable
                )
            return Answer(response.status_code, response.headers, raw, undecodable)

    async def aclose(self) -> None:
        """Close the pools we opened (never a caller's own client)."""
        self._closed = True
        await self.pools.aclose(close_pools=self._owns_pools)
