"""What the request path relies on from httpx (and httpcore), pinned with the version.

`_requester` maps what httpx raises onto the exception tree by class: a
``DecodingError`` while reading is a body that does not decompress, ``ConnectError``
is "could not connect", ``TimeoutException`` a timeout, and any other
``TransportError`` a failure on the wire; anything else escapes as a bug. The client
checks a base URL with ``httpx.URL``; `_http.httpx_is_mocked` looks at three
methods a mocking library replaces; `_redact` filters httpx's and httpcore's loggers
by name. Every test talks to a raw server on 127.0.0.1 or to no server at all.
"""

from __future__ import annotations

import gzip
import inspect
import logging
import ssl
import warnings
from typing import Final

import httpcore
import httpx
import pytest

from organik_async import _http, _redact
from tests.helpers.wire import CLOSE, HANG, answer, closed_url, wire_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

V: Final = f"httpx {httpx.__version__} (httpcore {httpcore.__version__})"
TIMEOUT: Final = httpx.Timeout(5.0, read=0.2)


async def failure(url: str) -> BaseException:
    """What a POST to ``url`` and reading its answer raises."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        try:
            async with client.stream("POST", url, content=b"{}") as response:
                async for _chunk in response.aiter_bytes():
                    pass
        except Exception as exc:
            return exc
    raise AssertionError(f"{V}: a POST to {url} failed with nothing")


async def test_a_body_that_does_not_decompress_raises_decoding_error_while_read() -> None:
    reply = answer(200, b"not gzip at all", ("Content-Encoding", "gzip"))
    async with wire_server(reply) as server, httpx.AsyncClient(timeout=TIMEOUT) as client:
        async with client.stream("POST", server.url, content=b"{}") as response:
            try:
                async for _chunk in response.aiter_bytes():
                    pass
            except httpx.DecodingError:
                return
    raise AssertionError(
        f"{V}: a gzip answer that is not gzip raised no DecodingError while read; "
        "_requester._read_capped reports DecodingError as a DecodeError"
    )


async def test_a_body_that_decompresses_is_read_decompressed() -> None:
    reply = answer(200, gzip.compress(b'{"response": {}}'), ("Content-Encoding", "gzip"))
    async with wire_server(reply) as server, httpx.AsyncClient(timeout=TIMEOUT) as client:
        async with client.stream("POST", server.url, content=b"{}") as response:
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert body == b'{"response": {}}', f"{V}: aiter_bytes() no longer decompresses gzip"


async def test_the_chunk_iterator_can_be_closed() -> None:
    async with (
        wire_server(answer(200, b"{}")) as server,
        httpx.AsyncClient(timeout=TIMEOUT) as client,
    ):
        async with client.stream("POST", server.url, content=b"{}") as response:
            chunks = response.aiter_bytes()
            assert inspect.isasyncgen(chunks), (
                f"{V}: Response.aiter_bytes() is no longer an async generator; "
                "_requester._read_capped closes it with contextlib.aclosing"
            )
            await chunks.aclose()


async def test_a_refused_connection_raises_connect_error() -> None:
    exc = await failure(closed_url())
    assert isinstance(exc, httpx.ConnectError), (
        f"{V}: a refused connection raised {type(exc).__name__}, not ConnectError; "
        "_requester counts ConnectError as 'could not connect' (EndpointUnreachableError)"
    )


@pytest.mark.slow
async def test_no_answer_in_time_raises_a_timeout_exception_not_a_connect_error() -> None:
    async with wire_server(HANG) as server:
        exc = await failure(server.url)
    assert isinstance(exc, httpx.TimeoutException), (
        f"{V}: a read timeout raised {type(exc).__name__}, not a TimeoutException; "
        "_requester maps TimeoutException to TimeoutError"
    )
    assert not isinstance(exc, httpx.ConnectError), (
        f"{V}: a read timeout is a ConnectError; _requester would count it as unreachable"
    )


async def test_a_connection_closed_mid_answer_raises_a_transport_error() -> None:
    reply = answer(200, b"{}" * 50)[:-40] + CLOSE
    async with wire_server(reply) as server:
        exc = await failure(server.url)
    assert isinstance(exc, httpx.TransportError), (
        f"{V}: a connection closed mid-answer raised {type(exc).__name__}, not a "
        "TransportError; _requester maps only TransportError to our TransportError"
    )
    assert not isinstance(exc, httpx.ConnectError | httpx.TimeoutException), (
        f"{V}: a connection closed mid-answer raised {type(exc).__name__}: "
        "_requester would call it unreachable or a timeout"
    )


@pytest.mark.parametrize(
    "kind",
    [
        httpx.ConnectError,
        httpx.TimeoutException,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ReadError,
        httpx.WriteError,
        httpx.RemoteProtocolError,
        httpx.LocalProtocolError,
        httpx.ProxyError,
        httpx.UnsupportedProtocol,
    ],
)
def test_every_failure_on_the_wire_is_a_transport_error(kind: type[Exception]) -> None:
    assert issubclass(kind, httpx.TransportError), (
        f"{V}: {kind.__name__} is no longer a TransportError; _requester would let it "
        "escape as httpx's own exception instead of our TransportError"
    )


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://host:port", id="port-not-a-number"),
        pytest.param("http://[::1", id="unclosed-ipv6"),
        pytest.param("http://ho\x00st", id="control-character"),
        pytest.param("http://a\x80b/", id="bad-idna"),
    ],
)
def test_a_malformed_url_raises_invalid_url(url: str) -> None:
    try:
        httpx.URL(url)
    except httpx.InvalidURL:
        return
    except Exception as exc:
        raise AssertionError(
            f"{V}: httpx.URL({url!r}) raised {type(exc).__name__}, not InvalidURL; "
            "_client._check_base_url turns only InvalidURL into a ValueError"
        ) from None
    raise AssertionError(f"{V}: httpx.URL({url!r}) accepts a malformed URL")


def test_the_methods_a_mocking_library_replaces_are_httpx_and_httpcore_own() -> None:
    for owner, name in _http._HTTPX_SEAMS:
        method = getattr(owner, name, None)
        module = getattr(method, "__module__", None) or ""
        assert module.startswith(("httpx.", "httpcore.")), (
            f"{V}: {owner.__name__}.{name} is missing or lives in {module!r}; "
            "_http.httpx_is_mocked would think httpx mocked and never use aiohttp"
        )


def test_an_ssl_context_is_made_without_a_deprecation() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        context = httpx.create_ssl_context()
    assert isinstance(context, ssl.SSLContext), (
        f"{V}: httpx.create_ssl_context() no longer returns an SSLContext; "
        "_client shares one between its pools and aiohttp"
    )


async def test_httpx_and_httpcore_log_only_on_the_loggers_the_redactor_filters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The URL, and so the key, is in these records: a logger not in the list leaks it.
    caplog.set_level(logging.DEBUG)
    async with (
        wire_server(answer(200, b"{}")) as server,
        httpx.AsyncClient(timeout=TIMEOUT) as client,
    ):
        await client.post(server.url, content=b"{}")
    names = {record.name for record in caplog.records}
    assert any(name.startswith("httpx") for name in names), f"{V}: httpx logged nothing"
    assert any(name.startswith("httpcore") for name in names), f"{V}: httpcore logged nothing"
    unfiltered = names - set(_redact._LOGGERS)
    assert not unfiltered, (
        f"{V}: httpx or httpcore logs on {sorted(unfiltered)}, which _redact._LOGGERS "
        "does not name: the API key in a URL would reach those records unmasked"
    )
