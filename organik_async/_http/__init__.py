"""The HTTP backends behind one small interface, and the one place that picks one.

Everything above this package sends through a `Sender` (see ``_base``): POST
a prepared `Route` and a body, get an `Answer` back (status, headers, capped
and decompressed body) or our typed error from `exchange()`. Two
implementations exist, `HttpxSender` (asyncio and trio; a caller's own httpx
client or transport) and `AiohttpSender` (asyncio only, less CPU).
`make_sender()` builds what the client's settings ask for; with
``http_backend="auto"`` that is an `AutoSender`, which, as httpcore's
``AutoBackend`` does, learns the event loop on the first request and picks
the implementation then, once. What both must agree on beyond one request is
decided here once too: which URLs either library can send to (``_urls``), and
which proxy the environment names for the base URL (``_proxy``), read by
httpx's rules and handed to whichever backend sends.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Final

import httpcore
import httpx

from .._exceptions import RequestInfo
from ._aiohttp import AVAILABLE as AIOHTTP_AVAILABLE
from ._aiohttp import AiohttpSender
from ._base import (
    HTTPX_USER_AGENT,
    KEEPALIVE_EXPIRY,
    Answer,
    CouldNotConnect,
    Route,
    Sender,
    WireErrors,
    exchange,
    forget_locals,
)
from ._httpx import HttpxSender, pool_limits
from ._pool import PoolSet
from ._proxy import EnvProxy, environment_proxy
from ._urls import url_problem

__all__ = [
    "AIOHTTP_AVAILABLE",
    "HTTPX_USER_AGENT",
    "KEEPALIVE_EXPIRY",
    "AiohttpSender",
    "Answer",
    "AutoSender",
    "CouldNotConnect",
    "EnvProxy",
    "HttpxSender",
    "PoolSet",
    "Route",
    "Sender",
    "WireErrors",
    "environment_proxy",
    "exchange",
    "forget_locals",
    "httpx_is_mocked",
    "make_sender",
    "pool_limits",
    "url_problem",
]

logger = logging.getLogger("organik_async")

# What a mocking library (respx, pytest-httpx) replaces to see httpx's requests.
_HTTPX_SEAMS: Final = (
    (httpx.AsyncHTTPTransport, "handle_async_request"),
    (httpx.AsyncClient, "_transport_for_url"),
    (httpcore.AsyncConnectionPool, "handle_async_request"),
)


def httpx_is_mocked() -> bool:
    """Whether respx, pytest-httpx or the like has patched httpx's request path.

    Requests sent through aiohttp would pass such mocks by, and reach the
    network from a test; so while httpx is patched, "auto" stays on httpx.
    Asked on every request: three attribute look-ups.
    """
    for owner, name in _HTTPX_SEAMS:
        module = getattr(getattr(owner, name, None), "__module__", None) or ""
        if not module.startswith(("httpx.", "httpcore.")):
            return True
    return False


class AutoSender:
    """aiohttp on asyncio, httpx elsewhere: chosen on the first request, then kept.

    ``strict`` (``http_backend="aiohttp"``) refuses to run anywhere but on
    asyncio instead of falling back. While a mocking library patches httpx,
    "auto" sends through httpx, so a test's mocks see every request.
    """

    def __init__(self, httpx: HttpxSender, aiohttp: AiohttpSender, *, strict: bool) -> None:
        self.httpx = httpx
        self.aiohttp = aiohttp
        self._strict = strict
        self._chosen: Sender | None = None

    def __repr__(self) -> str:
        return f"<AutoSender chosen={self._chosen!r}>"

    @property
    def name(self) -> str:
        return (self._chosen or self.httpx).name

    @property
    def errors(self) -> WireErrors:
        return (self._chosen or self.httpx).errors

    @property
    def closed(self) -> bool:
        return self.httpx.closed

    @property
    def in_flight(self) -> int:
        return self.httpx.in_flight + self.aiohttp.in_flight

    def resolve(self) -> Sender:
        chosen = self._chosen or self._choose()
        if chosen is self.aiohttp and not self._strict and httpx_is_mocked():
            return self.httpx
        return chosen

    def _choose(self) -> Sender:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio, say
            if self._strict:
                raise ValueError(
                    "http_backend='aiohttp' runs on asyncio only; "
                    "use 'auto' (aiohttp on asyncio, httpx elsewhere) or 'httpx'"
                ) from None
            self._chosen = self.httpx
        else:
            self._chosen = self.aiohttp
        logger.debug(
            "http_backend=%r sends through %s",
            "aiohttp" if self._strict else "auto",
            self._chosen.name,
        )
        return self._chosen

    async def send(
        self, route: Route, body: bytes, *, timeouts: httpx.Timeout, limit: int, info: RequestInfo
    ) -> Answer:
        sender = self.resolve()
        return await sender.send(route, body, timeouts=timeouts, limit=limit, info=info)

    async def aclose(self) -> None:
        await self.httpx.aclose()
        await self.aiohttp.aclose()


def make_sender(
    backend: object,
    *,
    http_client: httpx.AsyncClient | None,
    transport: httpx.AsyncBaseTransport | None,
    timeout: httpx.Timeout,
    base_url: str,
    max_connections: int,
    pool_size: int,
) -> Sender:
    """The sender a client's settings ask for; a ``ValueError`` naming the setting if
    they cannot be served (checked at construction, before any request)."""
    if backend not in ("auto", "httpx", "aiohttp"):
        raise ValueError(f"http_backend must be 'auto', 'httpx' or 'aiohttp': {backend!r}")
    if http_client is not None and transport is not None:
        raise ValueError("pass http_client or transport, not both")
    custom = http_client is not None or transport is not None
    if backend == "aiohttp":
        if custom:
            raise ValueError(
                "http_backend='aiohttp' sends by itself: pass no http_client or transport"
            )
        if not AIOHTTP_AVAILABLE:
            raise ValueError(
                "http_backend='aiohttp' needs aiohttp: the aiohttp extra, organik_async[aiohttp]"
            )
    # A caller's own client or transport routes as it was made to (httpx reads no
    # environment for a transport); our own pools and session take this answer.
    proxy = None if custom else environment_proxy(httpx.URL(base_url))
    if proxy is not None and proxy.socks and backend == "aiohttp":
        raise ValueError(
            f"{proxy.variable} names a SOCKS proxy, and http_backend='aiohttp' sends "
            "through HTTP proxies only: use 'auto' or 'httpx'"
        )
    context = _SharedSSLContext()
    httpx_sender = HttpxSender.build(
        http_client=http_client,
        transport=transport,
        timeout=timeout,
        max_connections=max_connections,
        pool_size=pool_size,
        ssl_context=context,
        proxy=proxy,
    )
    if backend == "httpx" or custom or not AIOHTTP_AVAILABLE:
        return httpx_sender
    if proxy is not None and proxy.socks:  # "auto": aiohttp has no SOCKS of its own
        return httpx_sender
    aiohttp_sender = AiohttpSender(
        max_connections=max_connections, base_url=base_url, ssl_context=context, proxy=proxy
    )
    return AutoSender(httpx_sender, aiohttp_sender, strict=backend == "aiohttp")


class _SharedSSLContext:
    """httpx's default SSL context, made once when a backend first needs it.

    Building one loads the CA store (~24 ms); every pool and the aiohttp
    session share it, so both backends trust the same certificates.
    """

    __slots__ = ("context",)

    def __init__(self) -> None:
        self.context: ssl.SSLContext | None = None

    def __call__(self) -> ssl.SSLContext:
        if self.context is None:
            self.context = httpx.create_ssl_context()
        return self.context
