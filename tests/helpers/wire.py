"""A raw HTTP server on 127.0.0.1 that answers with chosen bytes, and what wire tests share.

The lies the wire tests tell (a body that does not decompress, a length that is
not kept, a closed connection, a stalled answer) are what a well-behaved server
such as uvicorn refuses to send, so the server here is a raw socket: it reads
each request's head and body, and answers with the bytes it is given. The
contract tests use it to pin what the HTTP libraries do with such answers.
Also here: the client the wire tests build, a port nothing listens on, and the
check that nothing an error shows holds the key.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from organik_async import DetailedReport, HttpBackend, OrganikClient, OrganikError
from tests.helpers.provider import KEY, SEED_ROW, rows_answer

GOOD_JSON: Final = rows_answer(SEED_ROW)
"""The provider's JSON answer with the seed row."""
CAP: Final = 64 * 1024
"""The answer size cap of the wire tests' `client`."""
HANG: Final = b"<hang after the headers>"
"""Send the headers of a 100-byte answer, then nothing more."""
SILENT: Final = b"<read the request, never answer>"
"""Read the request, then send nothing at all."""
CLOSE: Final = b"<close without answering>"
"""Appended to an answer: send it, then close the connection."""


def answer(
    status: int = 200, body: bytes = GOOD_JSON, *headers: tuple[str, str], length: bool = True
) -> bytes:
    """An HTTP/1.1 answer: JSON's content type, ``headers``, and the body's length unless
    ``length`` is false or ``headers`` give one."""
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length and not any(name.lower() == "content-length" for name, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 4096) -> bytes:
    """``body`` in chunked transfer encoding."""
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


async def read_request(buffered: BufferedByteReceiveStream) -> bytes:
    """Read one request (its head, then as many body bytes as its head says): its head."""
    head = await buffered.receive_until(b"\r\n\r\n", 65_536)
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    await buffered.receive_exactly(length)
    return head


@asynccontextmanager
async def wire_server(reply: bytes | Callable[[int], bytes]) -> AsyncIterator[Wire]:
    """Answer every request with ``reply``, or request number n (from 1) with ``reply(n)``:
    raw bytes, `HANG`, `SILENT`, or bytes ending in `CLOSE`."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    wire = Wire(f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}")

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            buffered = BufferedByteReceiveStream(stream)
            while True:
                try:
                    head = await read_request(buffered)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                    return
                wire.heads.append(head)
                wire.arrived.set()
                data = reply if isinstance(reply, bytes) else reply(len(wire.heads))
                if data == SILENT:
                    await anyio.sleep_forever()
                if data == HANG:
                    await stream.send(answer(200, b"", ("Content-Length", "100")))
                    await anyio.sleep_forever()
                if data.endswith(CLOSE):
                    await stream.send(data.removesuffix(CLOSE))
                    return
                await stream.send(data)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield wire
        finally:
            tg.cancel_scope.cancel()


def closed_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def client(base_url: str, http_backend: HttpBackend = "auto", **kwargs: object) -> OrganikClient:
    """A client of ``KEY`` for ``base_url``: one retry at once, answers capped at `CAP`."""
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
