"""A raw HTTP server on 127.0.0.1 that answers with chosen bytes, and what wire tests share.

The lies the wire tests tell (a body that does not decompress, a length that is
not kept, a closed connection, a stalled answer) are what a well-behaved server
such as uvicorn refuses to send, so the server here is a raw socket: it reads
each request's head and body, and answers request number n with ``reply(n)``.
Also here: the client those tests build, and the check that no run of the key
shows in a text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from organik_async import DetailedReport, HttpBackend, OrganikClient, OrganikError

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
SILENT = b"<read the request, never answer>"
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
    """Answer request number n (from 1) with ``reply(n)``: raw bytes, HANG, SILENT,
    or bytes ending in CLOSE (sent, then the connection closed)."""
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
                if data is SILENT:
                    await anyio.sleep_forever()
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


RUN = 8
"""No run of this many consecutive characters of the key may show, in any case."""


def key_runs(text: str) -> list[str]:
    """Every run of ``RUN`` characters of the key found in ``text``, in any case."""
    lowered = text.lower()
    return [KEY[i : i + RUN] for i in range(len(KEY) - RUN + 1) if KEY[i : i + RUN] in lowered]
