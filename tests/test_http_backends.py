"""Both HTTP backends meet the wire the same way.

Every wire test here takes the ``http_backend`` fixture, so it runs on each
pair the client supports (httpx and aiohttp on asyncio, httpx on trio): the
same hostile bytes, the same typed error, the same masking. The
answers come from a raw socket server on 127.0.0.1, because the lies under
test (a body that does not decompress, a length that is not kept, a closed
connection) are what a well-behaved server such as uvicorn refuses to send.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from organik_async import (
    DecodeError,
    DetailedReport,
    EndpointUnreachableError,
    HttpBackend,
    HTTPStatusError,
    OrganikClient,
    OrganikError,
    RateLimitError,
    ResponseTooLargeError,
    TimeoutError,
    TransportError,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "f39c1a7e5b2d4c6a8e0f1b3d5a7c9e2b"
ROW = (
    b'{"gsm": 905445359675, "transaction_id": 14094857, "gsm_track_id": 410471976,'
    b' "delivery_track_id": "b627ffe79fc148e8ea7425222c4ed8",'
    b' "create_date": "2016-11-02 11:47:38", "start_date": "2016-11-02 11:47:38",'
    b' "finish_date": "2016-11-02 12:47:42", "status": 2, "sms_count": 1,'
    b' "credit_amount": 1, "is_foreign_gsm": 0}'
)
GOOD_JSON = b'{"response": {"result": true, "data": [' + ROW + b"]}}"
CAP = 64 * 1024
HANG = b"<hang after the headers>"
CLOSE = b"<close without answering>"


def answer(
    status: int = 200, body: bytes = GOOD_JSON, *headers: tuple[str, str], length: bool = True
) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length and not any(name.lower() == "content-length" for name, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 4096) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return out + b"0\r\n\r\n"


@dataclass
class Wire:
    """What the raw server saw: each request's head, in order."""

    url: str
    heads: list[bytes] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    def user_agents(self) -> set[str]:
        return {
            line.split(b":", 1)[1].strip().decode()
            for head in self.heads
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"user-agent:")
        }


@asynccontextmanager
async def wire_server(reply: Callable[[int], bytes]) -> AsyncIterator[Wire]:
    """Answer request number n (from 1) with ``reply(n)``: raw bytes, HANG, or
    bytes ending in CLOSE (sent, then the connection closed)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    wire = Wire(f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}")

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            buffered = BufferedByteReceiveStream(stream)
            while True:
                try:
                    head = await buffered.receive_until(b"\r\n\r\n", 65_536)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                    return
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await buffered.receive_exactly(length)
                wire.heads.append(head)
                wire.arrived.set()
                data = reply(len(wire.heads))
                if data.endswith(CLOSE):
                    await stream.send(data.removesuffix(CLOSE))
                    return
                if data is HANG:
                    await stream.send(answer(200, b"", ("Content-Length", "100")))
                    await anyio.sleep_forever()
                await stream.send(data)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield wire
        finally:
            tg.cancel_scope.cancel()


def client(base_url: str, http_backend: HttpBackend = "auto", **kwargs: object) -> OrganikClient:
    options: dict[str, object] = {
        "max_retries": 1,
        "backoff_base": 0,
        "max_retry_after": 0,
        "max_response_bytes": CAP,
        **kwargs,
    }
    return OrganikClient(KEY, base_url=base_url, http_backend=http_backend, **options)  # type: ignore[arg-type]


async def one_call(
    reply: Callable[[int], bytes], **kwargs: object
) -> tuple[list[DetailedReport] | OrganikError, Wire]:
    """One call of one ID against ``reply``; ``kwargs`` go to `client()`."""
    async with wire_server(reply) as wire, client(wire.url, **kwargs) as c:  # type: ignore[arg-type]
        try:
            with anyio.fail_after(10):
                return await c.detailed_report(transaction_ids=[14094857]), wire
        except OrganikError as exc:
            return exc, wire


def assert_safe(error: OrganikError) -> None:
    """No key in anything the error shows; no aiohttp or httpx exception chained."""
    shown = " ".join([str(error), repr(error), repr(vars(error))])
    assert KEY not in shown
    assert KEY[:16] not in shown
    assert error.__cause__ is None
    assert error.__context__ is None


def expected_agent(anyio_backend: str) -> str:
    return "aiohttp/" if anyio_backend == "asyncio" else "httpx/"


def wire_agent(http_backend: str) -> str:
    """The User-Agent a request sent through ``http_backend`` carries."""
    from organik_async import __version__

    library = aiohttp.__version__ if http_backend == "aiohttp" else httpx.__version__
    return f"organik_async/{__version__} {http_backend}/{library}"


# --- which backend sends -----------------------------------------------------------------


async def test_auto_sends_through_aiohttp_on_asyncio_and_httpx_on_trio(anyio_backend: str) -> None:
    rows, wire = await one_call(lambda _: answer())
    assert isinstance(rows, list)
    assert [row.gsm_track_id for row in rows] == [410471976]
    [agent] = wire.user_agents()
    assert agent.startswith("organik_async/")
    assert expected_agent(anyio_backend) in agent


async def test_httpx_backend_sends_through_httpx_on_both_loops() -> None:
    rows, wire = await one_call(lambda _: answer(), http_backend="httpx")
    assert isinstance(rows, list)
    [agent] = wire.user_agents()
    assert "httpx/" in agent


async def test_aiohttp_backend_runs_on_asyncio_and_is_refused_on_trio(anyio_backend: str) -> None:
    async with wire_server(lambda _: answer()) as wire:
        async with client(wire.url, "aiohttp") as c:
            if anyio_backend == "trio":
                with pytest.raises(ValueError, match="asyncio only"):
                    await c.detailed_report(transaction_ids=[1])
                assert wire.heads == []
            else:
                assert len(await c.detailed_report(transaction_ids=[1])) == 1
                assert "aiohttp/" in wire.user_agents().pop()


async def test_a_multi_batch_call_keeps_every_row_on_either_backend(
    http_backend: HttpBackend,
) -> None:
    def reply(n: int) -> bytes:
        row = ROW.replace(b"410471976", str(1000 + n).encode())
        return answer(200, b'{"response": {"result": true, "data": [' + row + b"]}}")

    async with wire_server(reply) as wire, client(wire.url, http_backend, batch_sizes=1) as c:
        with anyio.fail_after(10):
            rows = await c.detailed_report(transaction_ids=range(1, 41))
    assert sorted(row.gsm_track_id for row in rows) == list(range(1001, 1041))
    assert wire.user_agents() == {wire_agent(http_backend)}


def test_the_backend_is_a_read_only_setting_checked_at_construction() -> None:
    assert OrganikClient(KEY).http_backend == "auto"
    assert OrganikClient(KEY, http_backend="httpx").http_backend == "httpx"
    assert OrganikClient(KEY).with_options(max_retries=1).http_backend == "auto"
    with pytest.raises(AttributeError):
        OrganikClient(KEY).http_backend = "httpx"  # type: ignore[misc]
    with pytest.raises(ValueError, match="'auto', 'httpx' or 'aiohttp'"):
        OrganikClient(KEY, http_backend="requests")  # type: ignore[arg-type]
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with pytest.raises(ValueError, match="no http_client or transport"):
        OrganikClient(KEY, http_backend="aiohttp", transport=transport)


def test_without_aiohttp_auto_is_httpx_and_asking_for_aiohttp_says_how_to_install_it() -> None:
    program = textwrap.dedent(
        f"""
        import sys
        sys.modules["aiohttp"] = None  # as if it were not installed
        from organik_async import OrganikClient
        assert OrganikClient({KEY!r}).http_backend == "auto"
        try:
            OrganikClient({KEY!r}, http_backend="aiohttp")
        except ValueError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'organik_async[aiohttp]'" in done.stdout


async def test_without_aiohttp_auto_sends_through_httpx() -> None:
    async with wire_server(lambda _: answer()) as wire:
        program = textwrap.dedent(
            f"""
            import sys, anyio
            sys.modules["aiohttp"] = None
            from organik_async import OrganikClient
            async def main():
                async with OrganikClient({KEY!r}, base_url={wire.url!r}) as c:
                    print(len(await c.detailed_report(transaction_ids=[1])))
            anyio.run(main)
            """
        )
        done = await anyio.run_process([sys.executable, "-c", program], check=True)
    assert done.stdout.decode().strip() == "1"
    assert "httpx/" in wire.user_agents().pop()


# --- hostile bytes, the same typed error on both -----------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_200_that_does_not_decompress_is_a_decode_error(
    encoding: str, http_backend: HttpBackend
) -> None:
    body = GOOD_JSON + KEY.encode()
    error, wire = await one_call(
        http_backend=http_backend, reply=lambda _: answer(200, body, ("Content-Encoding", encoding))
    )
    assert isinstance(error, DecodeError)
    assert error.position == "Content-Encoding header"
    assert_safe(error)
    assert len(wire.heads) == 1  # not retried: it would fail the same way


async def test_a_503_that_does_not_decompress_is_its_status_error_and_retried(
    http_backend: HttpBackend,
) -> None:
    error, wire = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(503, b"Service Unavailable", ("Content-Encoding", "gzip")),
    )
    assert isinstance(error, HTTPStatusError)
    assert error.status_code == 503
    assert len(wire.heads) == 2
    assert_safe(error)


async def test_a_gzip_answer_that_is_whole_decodes(http_backend: HttpBackend) -> None:
    rows, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(200, gzip.compress(GOOD_JSON), ("Content-Encoding", "gzip")),
    )
    assert isinstance(rows, list)
    assert [row.gsm_track_id for row in rows] == [410471976]


async def test_a_compression_bomb_stops_at_max_response_bytes(http_backend: HttpBackend) -> None:
    bomb = gzip.compress(b" " * (CAP * 16))
    error, _ = await one_call(
        http_backend=http_backend, reply=lambda _: answer(200, bomb, ("Content-Encoding", "gzip"))
    )
    assert isinstance(error, ResponseTooLargeError)
    assert_safe(error)


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    http_backend: HttpBackend,
) -> None:
    error, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(200, GOOD_JSON, ("Content-Length", str(CAP * 100))),
    )
    assert isinstance(error, ResponseTooLargeError)
    assert str(CAP * 100) in str(error)


async def test_a_chunked_answer_over_the_cap_stops_at_the_cap(http_backend: HttpBackend) -> None:
    big = b'{"response": {"result": true, "data": [' + b",".join([ROW] * 400) + b"]}}"
    assert len(big) > CAP
    error, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(200, chunked(big), ("Transfer-Encoding", "chunked"), length=False),
    )
    assert isinstance(error, ResponseTooLargeError)


async def test_a_chunked_answer_under_the_cap_decodes(http_backend: HttpBackend) -> None:
    rows, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(
            200, chunked(GOOD_JSON, 50), ("Transfer-Encoding", "chunked"), length=False
        ),
    )
    assert isinstance(rows, list)
    assert len(rows) == 1


async def test_a_body_cut_short_is_a_transport_error_after_its_retry(
    http_backend: HttpBackend,
) -> None:
    cut = answer(200, GOOD_JSON[:40], ("Content-Length", str(len(GOOD_JSON))))
    error, wire = await one_call(http_backend=http_backend, reply=lambda _: cut + CLOSE)
    assert isinstance(error, TransportError)
    assert_safe(error)
    assert len(wire.heads) == 2


async def test_a_connection_closed_without_an_answer_is_retried_then_a_transport_error(
    http_backend: HttpBackend,
) -> None:
    error, wire = await one_call(http_backend=http_backend, reply=lambda _: CLOSE)
    assert isinstance(error, TransportError)
    assert not isinstance(error, EndpointUnreachableError)
    assert error.attempts == 2
    assert len(wire.heads) == 2
    assert_safe(error)


async def test_a_closed_connection_then_an_answer_is_rows(http_backend: HttpBackend) -> None:
    rows, wire = await one_call(
        http_backend=http_backend, reply=lambda n: CLOSE if n == 1 else answer()
    )
    assert isinstance(rows, list)
    assert len(rows) == 1
    assert len(wire.heads) == 2


async def test_an_answer_that_stops_arriving_is_a_timeout_error(http_backend: HttpBackend) -> None:
    error, _ = await one_call(
        http_backend=http_backend, reply=lambda _: HANG, timeout=httpx.Timeout(5, read=0.3)
    )
    assert isinstance(error, TimeoutError)
    assert error.attempts == 2
    assert_safe(error)


async def test_an_echoed_key_in_an_error_body_is_masked(http_backend: HttpBackend) -> None:
    body = b"bad gateway for /v2/" + KEY.encode() + b"/detailedreport/ and " + KEY.upper().encode()
    error, _ = await one_call(http_backend=http_backend, reply=lambda _: answer(502, body))
    assert isinstance(error, HTTPStatusError)
    assert KEY.encode() not in error.body
    assert KEY.upper().encode() not in error.body
    assert_safe(error)


async def test_a_429_with_retry_after_is_a_rate_limit_error_that_names_the_wait(
    http_backend: HttpBackend,
) -> None:
    error, _ = await one_call(
        http_backend=http_backend,
        reply=lambda _: answer(429, b"slow down", ("Retry-After", "7")),
        max_retries=0,
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0


async def test_nothing_listening_is_an_unreachable_endpoint_with_no_key(
    http_backend: HttpBackend,
) -> None:
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # the port is free again: nothing answers on it
        async with client(
            f"http://127.0.0.1:{port}", http_backend, max_retries=9, unreachable_after=3
        ) as c:
            with pytest.raises(EndpointUnreachableError) as caught:
                await c.detailed_report(transaction_ids=[1])
    assert caught.value.attempts == 3
    assert_safe(caught.value)


async def test_closing_the_client_ends_a_hanging_request_at_once(http_backend: HttpBackend) -> None:
    async with wire_server(lambda _: HANG) as wire:
        c = client(wire.url, http_backend)
        outcome: list[BaseException] = []

        async def call() -> None:
            try:
                await c.detailed_report(transaction_ids=[1])
            except OrganikError as exc:
                outcome.append(exc)

        with anyio.fail_after(10):
            async with c, anyio.create_task_group() as tg:
                tg.start_soon(call)
                await wire.arrived.wait()
                await c.aclose()
    [error] = outcome
    assert type(error).__name__ == "ClientClosedError"


# --- the environment's proxy, looked up once ----------------------------------------------


async def test_a_proxy_named_in_the_environment_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch, http_backend: HttpBackend
) -> None:
    async with wire_server(lambda _: answer()) as wire:
        monkeypatch.setenv("HTTP_PROXY", wire.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with client("http://provider.invalid", http_backend) as c:
            with anyio.fail_after(10):
                rows = await c.detailed_report(transaction_ids=[1])
    assert len(rows) == 1
    [head] = wire.heads
    assert head.startswith(b"POST http://provider.invalid/v2/")  # the absolute form: a proxy


async def test_no_proxy_leaves_the_provider_direct(
    monkeypatch: pytest.MonkeyPatch, http_backend: HttpBackend
) -> None:
    async with wire_server(lambda _: answer()) as wire:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: never used
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with client(wire.url, http_backend) as c:
            with anyio.fail_after(10):
                rows = await c.detailed_report(transaction_ids=[1])
    assert len(rows) == 1
    [head] = wire.heads
    assert head.startswith(b"POST /v2/")


# --- redirects: an answer, never followed -------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_an_http_status_error_naming_where_never_followed(
    http_backend: HttpBackend, status: int
) -> None:
    def reply(n: int) -> bytes:
        if n == 1:
            where = f"/v2/{KEY}/detailedreport/json/?page=2"  # same server: following would work
            return answer(status, b"", ("Location", where))
        return answer()

    error, wire = await one_call(http_backend=http_backend, reply=reply, max_retries=3)
    assert isinstance(error, HTTPStatusError)
    assert error.status_code == status
    assert "Location: /v2/***/detailedreport/json/?page=2" in str(error)
    assert error.attempts == 1  # a redirect is not retried either
    assert len(wire.heads) == 1  # and the IDs went nowhere else
    assert_safe(error)


async def test_a_2xx_that_does_not_decompress_says_it_took_one_attempt(
    http_backend: HttpBackend,
) -> None:
    body = GOOD_JSON + KEY.encode()
    error, _ = await one_call(
        http_backend=http_backend, reply=lambda _: answer(200, body, ("Content-Encoding", "gzip"))
    )
    assert isinstance(error, DecodeError)
    assert error.attempts == 1
