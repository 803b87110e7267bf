"""What the direct aiohttp path relies on from aiohttp, pinned with the version.

`_http._aiohttp.AiohttpSender` maps aiohttp's exceptions by class, as httpx's are:
``ClientConnectorError`` is "could not connect", ``ServerTimeoutError`` or the builtin
``TimeoutError`` a timeout, any other ``ClientError`` (or ``OSError``) a failure on the
wire. A body that does not decompress is told by its ``ContentEncodingError`` (or a
message naming Content-Encoding) while the body is read. The session is made with
``trust_env=False``, so that no request looks up the proxy variables or ``.netrc``,
and with the proxy the client decided from the environment, once, as ``proxy=``. Every test
talks to a raw server on 127.0.0.1 or to no server at all; aiohttp runs on asyncio only.
"""

from __future__ import annotations

import builtins
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import aiohttp
import pytest

from organik_async._http import _aiohttp
from tests.helpers.wire import CLOSE, HANG, answer, closed_url, wire_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

V: Final = f"aiohttp {aiohttp.__version__}"
PROXY_VARIABLES: Final = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def session(**options: Any) -> AsyncIterator[aiohttp.ClientSession]:
    """A session made as `_http._aiohttp.AiohttpSender` makes it (``options`` override)."""
    settings: dict[str, Any] = {
        "trust_env": False,
        "cookie_jar": aiohttp.DummyCookieJar(),
        "timeout": aiohttp.ClientTimeout(total=None),
        "auto_decompress": True,
        **options,
    }
    connector = aiohttp.TCPConnector(limit=4, limit_per_host=0, ssl=False, keepalive_timeout=4.0)
    async with aiohttp.ClientSession(connector=connector, **settings) as opened:
        yield opened


READ_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=5, sock_read=0.2)


async def post(opened: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    """POST as `AiohttpSender.send` does: the status and the body, read in chunks."""
    async with opened.post(url, data=b"{}", timeout=READ_TIMEOUT) as response:
        chunks = [chunk async for chunk in response.content.iter_any()]
        return response.status, b"".join(chunks)


async def failure(url: str) -> BaseException:
    async with session() as opened:
        try:
            await post(opened, url)
        except Exception as exc:
            return exc
    raise AssertionError(f"{V}: a POST to {url} failed with nothing")


async def test_a_refused_connection_raises_client_connector_error() -> None:
    exc = await failure(closed_url())
    assert isinstance(exc, aiohttp.ClientConnectorError), (
        f"{V}: a refused connection raised {type(exc).__name__}, not ClientConnectorError; "
        "_aiohttp maps ClientConnectorError to 'could not connect'"
    )


def test_aiohttp_timeouts_are_the_builtin_timeout_error() -> None:
    assert issubclass(aiohttp.ServerTimeoutError, builtins.TimeoutError), (
        f"{V}: ServerTimeoutError no longer subclasses the builtin TimeoutError; "
        "_aiohttp maps both to our TimeoutError"
    )


@pytest.mark.slow
async def test_no_answer_in_time_raises_a_timeout_not_a_connect_error() -> None:
    async with wire_server(HANG) as server:
        exc = await failure(server.url)
    assert isinstance(exc, aiohttp.ServerTimeoutError | builtins.TimeoutError), (
        f"{V}: a read timeout raised {type(exc).__name__}; _aiohttp maps only "
        "ServerTimeoutError and the builtin TimeoutError to our TimeoutError"
    )
    assert not isinstance(exc, aiohttp.ClientConnectorError), (
        f"{V}: a read timeout is a ClientConnectorError; _aiohttp would call it unreachable"
    )


async def test_a_connection_closed_mid_answer_raises_a_client_error() -> None:
    reply = answer(200, b"{}" * 50)[:-40] + CLOSE
    async with wire_server(reply) as server:
        exc = await failure(server.url)
    assert isinstance(exc, aiohttp.ClientError), (
        f"{V}: a connection closed mid-answer raised {type(exc).__name__}, not a "
        "ClientError; _aiohttp maps ClientError to our TransportError"
    )
    assert not isinstance(exc, aiohttp.ClientConnectorError | builtins.TimeoutError), (
        f"{V}: a connection closed mid-answer raised {type(exc).__name__}: "
        "_aiohttp would call it unreachable or a timeout"
    )
    assert not _aiohttp._undecodable(exc), (
        f"{V}: a body cut short ({exc!r}) looks like one that does not decompress "
        "to _aiohttp._undecodable"
    )


async def test_a_body_that_does_not_decompress_fails_while_read_and_says_so() -> None:
    reply = answer(200, b"not gzip at all", ("Content-Encoding", "gzip"))
    async with wire_server(reply) as server, session() as opened:
        async with opened.post(server.url, data=b"{}", timeout=READ_TIMEOUT) as response:
            try:
                async for _chunk in response.content.iter_any():
                    pass
            except aiohttp.ClientError as exc:
                assert _aiohttp._undecodable(exc), (
                    f"{V}: a gzip answer that is not gzip raised {exc!r}, with no "
                    "ContentEncodingError nor 'Content-Encoding' in its chain; "
                    "_aiohttp._undecodable looks for either"
                )
                return
    raise AssertionError(
        f"{V}: a gzip answer that is not gzip raised no ClientError while its body was read; "
        "AiohttpSender.send looks for it there"
    )


async def test_a_body_that_decompresses_is_read_decompressed() -> None:
    reply = answer(200, gzip.compress(b'{"response": {}}'), ("Content-Encoding", "gzip"))
    async with wire_server(reply) as server, session() as opened:
        status, body = await post(opened, server.url)
    assert (status, body) == (200, b'{"response": {}}'), f"{V}: gzip is not decompressed"


@pytest.fixture
def proxy_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable set, in either letter case."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def test_trust_env_false_reads_no_proxy_variable(
    proxy_variables: pytest.MonkeyPatch,
) -> None:
    async with (
        wire_server(answer(200, b"proxy")) as proxy,
        wire_server(answer(200, b"target")) as target,
    ):
        proxy_variables.setenv("HTTP_PROXY", proxy.url)
        proxy_variables.setenv("http_proxy", proxy.url)
        async with session(trust_env=True) as opened:
            _, trusting = await post(opened, target.url)
        async with session() as opened:
            _, direct = await post(opened, target.url)
        try:
            async with session(proxy=proxy.url) as opened:
                _, given = await post(opened, target.url)
        except TypeError as exc:
            raise AssertionError(
                f"{V}: ClientSession takes no proxy= ({exc}); _aiohttp passes the proxy "
                "from the environment to the session that way"
            ) from None
    assert trusting == b"proxy", f"{V}: the test's proxy variable is not honoured at all"
    assert direct == b"target", (
        f"{V}: a session with trust_env=False sent its request to the HTTP_PROXY; "
        "_aiohttp looks the proxy up once, itself, and passes it as proxy="
    )
    assert given == b"proxy", (
        f"{V}: ClientSession(proxy=...) did not send through that proxy; "
        "_aiohttp passes the proxy from the environment that way"
    )
