"""A call cancelled during the TLS handshake: what each backend leaves behind.

The server has a certificate of its own making (trustme), trusted through
``SSL_CERT_FILE`` as a private CA would be. Its first connection completes the
handshake and is answered (so the client's TLS works); every later one stalls
before the handshake's first reply, and the caller's time budget cancels the
call there. aiohttp closes the socket it opened. httpx (httpcore) does not: its
``start_tls`` closes the stream on an exception but not on a cancellation
(encode/httpcore#642), so the socket is left to the garbage collector (a
``ResourceWarning``), on asyncio and trio, with every anyio version we support.
Our client on httpx leaves exactly what a bare ``httpx.AsyncClient`` leaves; the
upstream behaviour is stated in the docs and pinned here.

Each measurement has a server of its own and collects garbage only after that
server has closed its end: a socket left open is then freed, and warns, inside its
own measurement, never in the next one's.
"""

from __future__ import annotations

import gc
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream

from organik_async import HttpBackend
from tests.helpers.provider import NO_ROWS
from tests.helpers.wire import answer, client, read_request

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60), pytest.mark.slow]


@asynccontextmanager
async def stalling_tls_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """An https:// URL whose first connection is answered and later ones stall the
    handshake; its CA is trusted through ``SSL_CERT_FILE`` while the block runs."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    connections = 0

    async def handle(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        async with stream:
            if connections > 1:
                await anyio.sleep_forever()  # the ClientHello is never answered
            tls = await TLSStream.wrap(stream, server_side=True, ssl_context=server_context)
            await read_request(BufferedByteReceiveStream(tls))
            await tls.send(answer(200, NO_ROWS, ("Connection", "close")))

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield f"https://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()


def unclosed(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def collected() -> None:
    """Let the event loop run, then collect: an unclosed socket warns when freed."""
    for _ in range(3):
        await anyio.sleep(0.05)
        gc.collect()


async def call_cancelled_in_the_handshake(url: str, http_backend: HttpBackend | None) -> None:
    """One answered call (TLS works), then one cancelled in the stalled handshake."""
    if http_backend is None:
        async with httpx.AsyncClient() as bare:
            with anyio.fail_after(10):
                assert (await bare.post(f"{url}/x", content=b"{}")).status_code == 200
            with anyio.move_on_after(0.5) as budget:
                await bare.post(f"{url}/x", content=b"{}")
            assert budget.cancelled_caught
    else:
        async with client(url, http_backend) as c:
            with anyio.fail_after(10):
                assert await c.detailed_report(transaction_ids=[1]) == []
            with anyio.move_on_after(0.5) as budget:
                await c.detailed_report(transaction_ids=[1])
            assert budget.cancelled_caught


async def cancelled_in_the_handshake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_backend: HttpBackend | None
) -> list[str]:
    """The ResourceWarnings left by a call cancelled in the TLS handshake: through our
    client on ``http_backend``, or (``None``) through a bare ``httpx.AsyncClient``.

    The window spans a server of its own, and the collection runs once the server has
    closed its end and the calls' frame is gone: a socket left open is freed, and warns,
    inside this window, not later in another measurement's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        async with stalling_tls_server(tmp_path, monkeypatch) as url:
            await call_cancelled_in_the_handshake(url, http_backend)
        await collected()
    return unclosed(caught)


async def test_a_call_cancelled_in_the_tls_handshake_leaves_no_more_than_httpx_itself(
    http_backend: HttpBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = await cancelled_in_the_handshake(tmp_path, monkeypatch, http_backend)
    if http_backend == "aiohttp":
        assert ours == []
        return
    bare = await cancelled_in_the_handshake(tmp_path, monkeypatch, None)
    # On httpx the socket is left open exactly when httpx alone leaves it open: that
    # depends on httpcore (see the module's docstring), not on us.
    assert bool(ours) == bool(bare), (ours, bare)


async def test_httpx_leaves_the_socket_open_where_the_docs_say_it_does(
    anyio_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream behaviour the docs state: the day httpcore closes the socket on a
    cancellation, this test fails and the docs must change with it."""
    bare = await cancelled_in_the_handshake(tmp_path, monkeypatch, None)
    assert bare, f"httpx {httpx.__version__} now closes it (on {anyio_backend})"
