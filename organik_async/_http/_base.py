"""What every HTTP backend shares: the request, the answer, the body cap, the errors.

A backend ("sender") does one thing: POST a prepared request and hand back the
status, the headers and the decompressed body, read through `read_capped()`.
Everything that must behave the same whichever library sends is written here
once: the cap on the body (`max_response_bytes`, declared or counted), a body
that does not decompress (a `DecodeError` on a 2xx; on any other status the
status decides), and what a library's exceptions mean on our tree
(`exchange()`, through each sender's `WireErrors`). Nothing above this
package knows which library sent a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final, NamedTuple, Protocol

import httpx

from .._exceptions import (
    ClientClosedError,
    DecodeError,
    OrganikError,
    RequestInfo,
    ResponseTooLargeError,
    TimeoutError,
    TransportError,
)
from .._models import Format
from .._redact import Redactor
from .._version import __version__

__all__ = [
    "KEEPALIVE_EXPIRY",
    "Answer",
    "CouldNotConnect",
    "Route",
    "Sender",
    "WireErrors",
    "exchange",
    "read_capped",
]

KEEPALIVE_EXPIRY: Final = 4.0
"""Seconds an idle connection is kept for reuse, on every backend.

Servers commonly close idle connections after 5 s (uvicorn, Apache, nginx's
default is 75 s, but many proxies use 5 s); reusing a connection at the moment
the server closes it fails a request that never reached the server. Dropping
idle connections a second earlier than that avoids the race (measured on the
simulator under uvicorn: retries at httpx's default of 5 s, none at 4 s).
"""

_MEDIA_TYPES: Final = {"json": "application/json", "xml": "application/xml"}
HTTPX_USER_AGENT: Final = f"organik_async/{__version__} httpx/{httpx.__version__}"


class Route:
    """The URL and headers of one pair of formats, built once per client.

    Its ``repr`` shows the URL with the key masked: a traceback formatted with
    its locals shows a route, never the key.
    """

    __slots__ = ("headers", "media", "shown", "text", "url")

    def __init__(self, url: str, shown: str, request: Format, answer: Format) -> None:
        self.text = url
        self.url = httpx.URL(url)
        self.shown = shown
        media = {"Content-Type": _MEDIA_TYPES[request], "Accept": _MEDIA_TYPES[answer]}
        self.headers = httpx.Headers({**media, "User-Agent": HTTPX_USER_AGENT})
        self.media = media  # backends that set their own User-Agent take these

    def __repr__(self) -> str:
        return f"<Route {self.shown}>"


class Answer(NamedTuple):
    """What came back: the status, the headers and at most the cap of decompressed body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    undecodable: bool = False
    """The body did not decompress as its ``Content-Encoding`` said (``body`` is
    what was read before that)."""


_Errors = tuple[type[BaseException], ...]


class WireErrors(NamedTuple):
    """What an HTTP library raises, by what it means: `exchange()` maps each
    kind onto the exception tree the same way for every backend."""

    connect: _Errors
    """Could not connect: refused, name not resolved, certificate refused."""
    timeout: _Errors
    transport: _Errors
    """Anything else on the wire (checked after the two above)."""
    undecodable: Callable[[BaseException], bool]
    """Whether an exception says the body does not decompress as declared."""


class Sender(Protocol):
    """One HTTP backend: sends a prepared request, returns the answer."""

    @property
    def name(self) -> str:
        """``"httpx"`` or ``"aiohttp"``: what sends."""
        ...

    @property
    def errors(self) -> WireErrors:
        """What this backend's library raises, by meaning."""
        ...

    @property
    def closed(self) -> bool: ...

    @property
    def in_flight(self) -> int:
        """Requests being sent or read right now."""
        ...

    def resolve(self) -> Sender:
        """The sender that carries this request: itself, or the one an automatic
        choice picks (see `AutoSender`)."""
        ...

    async def send(
        self, route: Route, body: bytes, *, timeouts: httpx.Timeout, limit: int, info: RequestInfo
    ) -> Answer:
        """POST ``body``; the answer, its body read with `read_capped()`.

        Raises `ResponseTooLargeError` past ``limit``, and the library's own
        exceptions for anything else (`exchange()` maps them).
        """
        ...

    async def aclose(self) -> None: ...


def declared_length(headers: Mapping[str, str]) -> int | None:
    """``Content-Length`` as an int, if it is one (``"²".isdigit()`` is true, hence
    isascii; ``[:20]`` because int() refuses over 4 300 digits)."""
    declared = headers.get("content-length", "")
    if declared.isascii() and declared.isdigit():
        return int(declared[:20])
    return None


async def read_capped(
    chunks: AsyncIterator[bytes],
    declared: int | None,
    limit: int,
    info: RequestInfo,
    undecodable: Callable[[BaseException], bool],
) -> tuple[bytes, bool]:
    """The body, at most ``limit`` bytes, and whether it stopped decompressing.

    A declared length over ``limit`` is refused before anything is read; a body
    that grows past it is refused as soon as it does (a compression bomb stops
    at the cap, not at the end of the bomb).
    """
    if declared is not None and declared > limit:
        raise ResponseTooLargeError.for_size(declared, limit, request=info)
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError.for_size(size, limit, request=info)
            parts.append(chunk)
    except Exception as exc:
        if isinstance(exc, ResponseTooLargeError) or not undecodable(exc):
            raise
        # Not chained, not kept: the library's error holds the URL, and so the key.
        return b"".join(parts), True
    return b"".join(parts), False


class CouldNotConnect(TransportError):
    """A `TransportError` that the request path counts as "could not connect".

    Internal only: the request path turns it into a plain `TransportError`
    before anything is raised.
    """

    def public(self) -> TransportError:
        return TransportError(self.message, cause=self.cause, request=self.request)


async def exchange(
    sender: Sender,
    route: Route,
    body: bytes,
    *,
    timeouts: httpx.Timeout,
    limit: int,
    info: RequestInfo,
    redactor: Redactor,
) -> Answer | OrganikError:
    """One POST through ``sender``: the answer, or what went wrong as our error.

    The error is returned, never raised with the library's exception chained:
    that exception holds the URL, and so the key; only its type name and its
    redacted text survive.
    """
    try:
        answer = await sender.send(route, body, timeouts=timeouts, limit=limit, info=info)
    except ResponseTooLargeError as exc:
        # Without the reading frames: their locals hold the answer's bytes.
        return exc.with_traceback(None)
    except Exception as exc:
        if sender.errors.undecodable(exc):  # before the status was known (a mock transport)
            return _undecodable(info)
        error = _wire_error(exc, info, sender, redactor)
        if error is None:
            raise
        return error
    if answer.undecodable and 200 <= answer.status < 300:
        return _undecodable(info)
    return answer


def _undecodable(info: RequestInfo) -> DecodeError:
    return DecodeError(
        "the answer does not decompress as its Content-Encoding says",
        position="Content-Encoding header",
        request=info,
    )


def _wire_error(
    exc: Exception, info: RequestInfo, sender: Sender, redactor: Redactor
) -> OrganikError | None:
    """What a backend raised, as our error (``None``: not the wire's, re-raise it)."""
    kinds = sender.errors
    name = type(exc).__name__
    cause = redactor.text(f"{name}: {exc}")
    if isinstance(exc, kinds.connect):  # refused, name not resolved
        return CouldNotConnect(f"could not connect ({name})", cause=cause, request=info)
    if isinstance(exc, kinds.timeout):
        return TimeoutError(f"timed out ({name})", cause=cause, request=info)
    if isinstance(exc, kinds.transport):
        return TransportError(f"request failed ({name})", cause=cause, request=info)
    if isinstance(exc, RuntimeError) and sender.closed:
        # aclose() ran while this request waited (in httpx's pool limiter, in
        # aiohttp's session): the closed library refuses with a bare RuntimeError.
        return ClientClosedError("the client was closed during this request", request=info)
    return None
