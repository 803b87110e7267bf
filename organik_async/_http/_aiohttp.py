"""The aiohttp backend: the same request for less client CPU, on asyncio only.

httpx over httpcore and h11 parses HTTP in Python, on anyio's socket layer;
once decoding runs at msgspec's limit, that is most of a bulk call's client
CPU (the performance page has the figures). aiohttp parses HTTP in C, but runs
on asyncio only, and an httpx transport on top of it (httpx-aiohttp) still
builds httpx's Request and Response objects per request. So this backend
sends through one ``aiohttp.ClientSession`` directly, and `AutoSender` picks
it on asyncio when aiohttp is installed.

aiohttp is optional, and imported only when the first request goes through
it (it takes about as long to import as httpx, msgspec and anyio together):
a trio program, or one on httpx, never pays for it.
"""

from __future__ import annotations

import builtins
import importlib.util
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import httpx

from .._exceptions import RequestInfo
from .._version import __version__
from ._base import KEEPALIVE_EXPIRY, Answer, Route, Sender, WireErrors, read_capped

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AVAILABLE", "AiohttpSender"]


def _installed() -> bool:
    try:
        return importlib.util.find_spec("aiohttp") is not None
    except ValueError:  # sys.modules["aiohttp"] is None: imports of it are blocked
        return False


AVAILABLE: Final = _installed()
"""Whether aiohttp can be imported (it is not, until a request needs it)."""

_NONE: Final = WireErrors((), (), (), lambda _: False)


class AiohttpSender:
    """One ``aiohttp.ClientSession``, opened on first use, for every request of a client.

    aiohttp's connector queues requests beyond ``max_connections`` itself, in
    order and in O(1), so no limiter of ours sits in front of it (httpcore's
    pool needs ours: see ``_pool``). Waiting for a connection is not limited
    by the connect timeout (as under our limiter on httpx); the attempt
    deadline bounds it.
    """

    name: Final = "aiohttp"

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
        self._in_flight = 0
        self.user_agent = ""
        self.errors = _NONE  # what aiohttp raises, known once it is imported
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        return f"<AiohttpSender open={self._session is not None}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def resolve(self) -> Sender:
        return self

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
            undecodable=_undecodable,
        )
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            # An http:// base URL needs no SSL context (building one loads the CA
            # store, ~24 ms); an https:// one gets httpx's, so both paths trust
            # the same certificates.
            ssl=self._ssl_context() if self._secure else False,
            keepalive_timeout=KEEPALIVE_EXPIRY,
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

    async def send(
        self, route: Route, body: bytes, *, timeouts: httpx.Timeout, limit: int, info: RequestInfo
    ) -> Answer:
        session = self._session or self._open()
        self._in_flight += 1
        try:
            async with session.post(
                route.text,
                data=body,
                headers={**route.media, "User-Agent": self.user_agent},
                timeout=self._timeout(timeouts),
                allow_redirects=False,  # as httpx: a 3xx is an answer, never followed
            ) as response:
                raw, undecodable = await read_capped(
                    response.content.iter_any(), response.content_length, limit, info, _undecodable
                )
                return Answer(response.status, response.headers, raw, undecodable)
        finally:
            self._in_flight -= 1

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
