"""The direct aiohttp path: the same request, at a third of httpx's CPU, on asyncio.

httpx over httpcore and h11 spends about 1.5–2 ms of client CPU on a 500-row
answer: most of a bulk call's time once decoding is at msgspec's limit
(``benchmarks/PROFILE.md``). aiohttp parses HTTP in C and needs no anyio
socket layer, but runs on asyncio only, and an httpx transport on top of it
(httpx-aiohttp) still builds httpx's Request and Response objects per request.
So when aiohttp is installed and the call runs on asyncio, the request path
sends through one ``aiohttp.ClientSession`` directly; on trio, with a caller's
own ``http_client`` or ``transport``, or with ``http_backend="httpx"``, it stays
on httpx. Everything above this module (retries, throttles, decoding, errors)
is the same on both.

What aiohttp raises is mapped onto the exception tree by the request path,
through the pool's `WireErrors`, exactly as httpx's exceptions are.
aiohttp is optional, and imported only when the first request goes through
it (it takes about as long to import as httpx, msgspec and anyio together):
a trio program, or one on httpx, never pays for it.
"""

from __future__ import annotations

import builtins
import importlib.util
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, NamedTuple

import httpcore
import httpx

from ._exceptions import DecodeError, RequestInfo, ResponseTooLargeError
from ._version import __version__

if TYPE_CHECKING:
    import aiohttp
    from multidict import CIMultiDictProxy

__all__ = ["AVAILABLE", "AiohttpPool", "WireErrors", "httpx_is_mocked"]


def _installed() -> bool:
    try:
        return importlib.util.find_spec("aiohttp") is not None
    except ValueError:  # sys.modules["aiohttp"] is None: imports of it are blocked
        return False


AVAILABLE: Final = _installed()
"""Whether aiohttp can be imported (it is not, until a request needs it)."""

_Errors = tuple[type[BaseException], ...]


class WireErrors(NamedTuple):
    """What an HTTP library raises, by what it means: the request path maps each
    kind onto the exception tree the same way for every backend."""

    connect: _Errors
    """Could not connect: refused, name not resolved, certificate refused."""
    timeout: _Errors
    transport: _Errors
    """Anything else on the wire (checked after the two above)."""


_NONE: Final = WireErrors((), (), ())

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


class AiohttpPool:
    """One ``aiohttp.ClientSession``, opened on first use, for every request of a client.

    aiohttp's connector queues requests beyond ``max_connections`` itself, in
    order and in O(1), so no limiter of ours sits in front of it (httpcore's
    pool needs ours: see ``_pool``). Waiting for a connection is not limited
    by the connect timeout (as under our limiter on httpx); the attempt
    deadline bounds it.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        base_url: str,
        ssl_context: Callable[[], ssl.SSLContext],
    ) -> None:
        self._max_connections = max_connections
        self._base_url = base_url
        self._secure = base_url.startswith("https:")
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.user_agent = ""
        self.errors = _NONE  # what aiohttp raises, known once it is imported
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        return f"<AiohttpPool open={self._session is not None}>"

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this aiohttp session is closed")  # as aiohttp's own
        import aiohttp

        self.user_agent = f"organik_async/{__version__} aiohttp/{aiohttp.__version__}"
        self.errors = WireErrors(
            connect=(aiohttp.ClientConnectorError,),  # as httpx's ConnectError
            # aiohttp's timeouts subclass the builtin TimeoutError (asyncio's, since 3.11).
            timeout=(aiohttp.ServerTimeoutError, builtins.TimeoutError),
            # The rest of what a request can meet on the wire (OSError: a reset socket).
            transport=(aiohttp.ClientError, OSError),
        )
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            # An http:// base URL needs no SSL context (building one loads the CA
            # store, ~24 ms); an https:// one gets httpx's, so both paths trust
            # the same certificates.
            ssl=self._ssl_context() if self._secure else False,
            keepalive_timeout=5.0,  # httpx's keep-alive expiry
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # trust_env=True would look up .netrc and the proxy variables in a
            # thread on every request (a third of the client's CPU, measured);
            # the proxy for our one host is looked up once, here, as httpx does.
            trust_env=False,
            proxy=_env_proxy(self._base_url),
            cookie_jar=aiohttp.DummyCookieJar(),  # the API sets none; httpx's are unused too
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
        )
        return self._session

    def _timeout(self, timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
        key = (timeout.connect, timeout.read)
        found = self._timeouts.get(key)
        if found is None:
            import aiohttp

            found = aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=timeout.connect, sock_read=timeout.read
            )
            self._timeouts[key] = found
        return found

    async def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeouts: httpx.Timeout,
        limit: int,
        info: RequestInfo,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """POST ``body``; the status, the headers and at most ``limit`` bytes of answer.

        Raises [`ResponseTooLargeError`][organik_async.ResponseTooLargeError] past ``limit``,
        [`DecodeError`][organik_async.DecodeError] for a 2xx body that does not decompress as
        declared (on any other status, the status decides), and aiohttp's own errors otherwise.
        """
        session = self._session or self._open()
        async with session.post(
            url,
            data=body,
            headers={**headers, "User-Agent": self.user_agent},
            timeout=self._timeout(timeouts),
        ) as response:
            declared = response.content_length
            if declared is not None and declared > limit:
                raise ResponseTooLargeError.for_size(declared, limit, request=info)
            chunks: list[bytes] = []
            size = 0
            undecodable = False
            try:
                async for chunk in response.content.iter_any():
                    size += len(chunk)
                    if size > limit:
                        raise ResponseTooLargeError.for_size(size, limit, request=info)
                    chunks.append(chunk)
            except self.errors.transport as exc:
                if not _undecodable(exc):
                    raise
                undecodable = True  # raised below, unchained: aiohttp's error holds the URL
            if undecodable and 200 <= response.status < 300:
                raise DecodeError(
                    "the answer does not decompress as its Content-Encoding says",
                    position="Content-Encoding header",
                    request=info,
                )
            return response.status, response.headers, b"".join(chunks)

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _env_proxy(base_url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` name for ``base_url``, if any."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(base_url))
    except LookupError:
        return None
    if auth is not None and proxy.user is None:  # credentials from .netrc
        proxy = proxy.with_user(auth.login).with_password(auth.password)
    return str(proxy)


def _undecodable(exc: BaseException) -> bool:
    """Whether aiohttp refused the body's compression (not a cut-off body)."""
    cause: BaseException | None = exc
    while cause is not None:
        if (
            type(cause).__name__ == "ContentEncodingError"
            or "content-encoding" in str(cause).lower()
        ):
            return True
        cause = cause.__cause__
    return False
