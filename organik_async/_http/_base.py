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

import contextlib
import copy
import dis
import inspect
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from types import FrameType
from typing import Final, NamedTuple, Protocol

import httpx

from .._exceptions import (
    ClientClosedError,
    DecodeError,
    OrganikError,
    RequestInfo,
    ResponseTooLargeError,
    TimeoutExpiredError,
    TransportError,
)
from .._models import Format
from .._redact import Redactor
from .._version import __version__

__all__ = [
    "ACCEPT_ENCODING",
    "KEEPALIVE_EXPIRY",
    "MAX_HEAD",
    "Answer",
    "CouldNotConnect",
    "Route",
    "Sender",
    "WireErrors",
    "exchange",
    "forget_locals",
    "read_capped",
    "readable_encoding",
]

KEEPALIVE_EXPIRY: Final = 4.0
"""Seconds an idle connection is kept for reuse, on every backend.

Servers commonly close idle connections after 5 s (uvicorn, Apache, nginx's
default is 75 s, but many proxies use 5 s); reusing a connection at the moment
the server closes it fails a request that never reached the server. Dropping
idle connections a second earlier than that avoids the race (measured on the
simulator under uvicorn: retries at httpx's default of 5 s, none at 4 s).
"""

MAX_HEAD: Final = 100 * 1024
"""Bytes of status line and headers an answer may have, on every backend: httpcore's
limit (h11's ``max_incomplete_event_size``); aiohttp is given the same room instead
of its own 8,190 bytes a line and 128 lines."""

ACCEPT_ENCODING: Final = "gzip, deflate"
"""What every backend asks for, whatever compression libraries are installed (httpx
would add br with brotli, zstd with zstandard; aiohttp br with brotli, zstd with
backports.zstd): both libraries decode these two the same way."""

_COMPRESSIONS: Final = frozenset({"gzip", "deflate", "br", "zstd"})
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
        media = {
            "Content-Type": _MEDIA_TYPES[request],
            "Accept": _MEDIA_TYPES[answer],
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        self.headers = httpx.Headers({**media, "User-Agent": HTTPX_USER_AGENT})
        self.media = media  # backends that set their own User-Agent take these

    def __repr__(self) -> str:
        return f"<Route {self.shown}>"

    def with_headers(self, extra: Mapping[str, str]) -> Route:
        """This route with ``extra`` headers added (a trace context), for one request."""
        route = copy.copy(self)
        route.headers = httpx.Headers({**self.headers, **extra})
        route.media = {**self.media, **extra}
        return route


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
    refused_url: _Errors
    """The library refused the URL while sending (a port or a host name it cannot use):
    as could not connect. Checked before the two below."""
    timeout: _Errors
    transport: _Errors
    """Anything else on the wire (checked after the three above)."""
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


def readable_encoding(content_encoding: str | None) -> bool:
    """Whether an answer's ``Content-Encoding`` (all its values, comma-joined) is one
    the client reads: no compression, or one of those it asked for.

    br, zstd, or two compressions stacked: no, on every backend, whether a library
    for them is installed or not (the client did not ask for them). A token that
    names no compression ("identity", or "utf-8" from a misconfigured server) is
    ignored, as both libraries ignore it.
    """
    if not content_encoding:
        return True
    tokens = [token.strip().lower() for token in content_encoding.split(",")]
    compressions = [token for token in tokens if token in _COMPRESSIONS]
    return len(compressions) <= 1 and all(token in ("gzip", "deflate") for token in compressions)


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
    except BaseException as exc:
        # Whatever leaves the sender (a cancellation from the caller's time budget
        # included) leaves the library's frames behind it without their locals.
        forget_locals(exc)
        if isinstance(exc, ResponseTooLargeError):
            return exc.with_traceback(None)
        if not isinstance(exc, Exception):
            raise
        if sender.errors.undecodable(exc):  # before the status was known (a mock transport)
            return _undecodable(info)
        error = _wire_error(exc, info, sender, redactor)
        if error is None:
            raise
        return error
    if answer.undecodable and 200 <= answer.status < 300:
        return _undecodable(info)
    return answer


_GENERATOR_FLAGS: Final = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)
_YIELD_VALUE: Final = dis.opmap["YIELD_VALUE"]


def forget_locals(error: BaseException) -> None:
    """Empty the locals of the frames ``error`` left below the one handling it.

    The HTTP libraries' frames hold the URL, and so the key, in their locals
    (httpx's ``url`` and ``request``, aiohttp's ``str_or_url``); error trackers
    such as Sentry, and ``traceback`` with ``capture_locals=True``, show them.
    The frames stay in the traceback (files and lines), without their locals.
    Only frames that ``error`` unwound are touched, and the exceptions chained
    to it there (the cancellation an ``asyncio.timeout`` turns into
    ``TimeoutError`` is one): they have finished running.
    """
    handler = error.__traceback__
    if handler is None:
        return
    cleared: set[int] = {id(handler.tb_frame)}
    todo = [error]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        entry = current.__traceback__
        if entry is None or id(entry.tb_frame) not in cleared:
            continue  # raised elsewhere (say, the caller's own): not ours to touch
        entry = entry.tb_next
        while entry is not None:
            frame = entry.tb_frame
            if id(frame) not in cleared and not _may_be_suspended(frame):
                with contextlib.suppress(RuntimeError):  # still running: never cleared
                    frame.clear()
                    cleared.add(id(frame))
            entry = entry.tb_next
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _may_be_suspended(frame: FrameType) -> bool:
    """Whether ``frame`` may be a generator's or coroutine's, paused at a ``yield``.

    Before Python 3.13, ``frame.clear()`` on such a frame closes its generator
    (3.13 refuses, as for a running frame). A frame the error unwound has
    finished; this guards against one that merely caught and handed it on.
    """
    if sys.version_info >= (3, 13) or not frame.f_code.co_flags & _GENERATOR_FLAGS:
        return False
    code = frame.f_code.co_code
    return 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] == _YIELD_VALUE


def _undecodable(info: RequestInfo) -> DecodeError:
    return DecodeError(
        "the answer is not in an encoding the client reads (identity, gzip or deflate), "
        "or does not decompress as its Content-Encoding says",
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
        reason = redactor.text(connect_reason(exc) or cause)
        return CouldNotConnect(f"could not connect ({reason})", cause=reason, request=info)
    refused = _only(exc, kinds.refused_url)
    if refused is not None:
        reason = redactor.text(f"the HTTP library refused the URL ({_named(refused)})")
        return CouldNotConnect(f"could not connect ({reason})", cause=reason, request=info)
    if isinstance(exc, kinds.timeout):
        return TimeoutExpiredError(f"timed out ({name})", cause=cause, request=info)
    if isinstance(exc, kinds.transport):
        return TransportError(f"request failed ({name})", cause=cause, request=info)
    if isinstance(exc, RuntimeError) and sender.closed:
        # aclose() ran while this request waited (in httpx's pool limiter, in
        # aiohttp's session): the closed library refuses with a bare RuntimeError.
        return ClientClosedError("the client was closed during this request", request=info)
    return None


def _only(exc: BaseException, kinds: _Errors) -> BaseException | None:
    """``exc`` if it is one of ``kinds``, or the first of an exception group made only
    of them (anyio's happy-eyeballs task group wraps what a connection attempt raised)."""
    if not kinds:
        return None
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(kinds)
        if matched is not None and rest is None:
            first: BaseException = matched
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            return first
    return None


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def connect_reason(exc: BaseException) -> str | None:
    """Why connecting failed, in the same words whichever library tried.

    Each library wraps the socket's error in its own words (aiohttp: "Cannot
    connect to host h:80 ssl:default [...]"; httpx: "All connection attempts
    failed"); the operating system's error under them (aiohttp's documented
    ``os_error``, httpx's chained cause) says what happened: ``None`` if there
    is none to find.
    """
    root = _root_os_error(exc)
    if root is None:
        return None
    if isinstance(root, ssl.SSLCertVerificationError):
        return f"certificate refused: {root.verify_message or root.reason}"
    if isinstance(root, ssl.SSLError):
        return f"TLS handshake failed: {root.reason or root}"
    if isinstance(root, socket.gaierror):
        return f"name not resolved: {root.strerror or root}"
    if root.errno is not None and root.errno > 0:
        return os.strerror(root.errno).lower()
    return str(root) or type(root).__name__


def _root_os_error(exc: BaseException) -> OSError | None:
    """The operating system's (or the ssl module's) error under ``exc``, if any."""
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    found: OSError | None = None
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and type(current).__module__ in _OS_MODULES:
            if isinstance(current, ssl.SSLError | socket.gaierror) or current.errno:
                return current
            found = found or current
        below = [current.__cause__, current.__context__, getattr(current, "os_error", None)]
        todo += [e for e in below if isinstance(e, BaseException)]
        if isinstance(current, BaseExceptionGroup):
            todo += list(current.exceptions)
    return found


_OS_MODULES: Final = frozenset({"builtins", "socket", "ssl"})
