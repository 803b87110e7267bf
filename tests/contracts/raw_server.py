"""A raw HTTP/1.1 server on 127.0.0.1 for the contract tests: it answers exactly the bytes
it is given, so a test can send what a well-behaved server never would (a body that does
not decompress, a closed connection, no answer at all)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

HANG: Final = b"<hang after the headers>"
"""Send the headers of a 100-byte answer, then nothing more."""
SILENT: Final = b"<never answer>"
"""Read the request, then send nothing at all."""
CLOSE: Final = b"<close>"
"""Appended to an answer: send it, then close the connection."""


def answer(body: bytes, *headers: tuple[str, str], status: int = 200) -> bytes:
    """An HTTP/1.1 answer with ``body``, its length and ``headers``."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Server:
    """Where the server listens and the heads of the requests it read."""

    url: str
    heads: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def raw_server(reply: bytes) -> AsyncIterator[Server]:
    """Answer every request with ``reply`` (raw bytes, `HANG`, `SILENT`, or ending in `CLOSE`)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server = Server(f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}")

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            buffered = BufferedByteReceiveStream(stream)
            while True:
                try:
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
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                    return
                server.heads.append(head)
                if reply == SILENT:
                    await anyio.sleep_forever()
                if reply == HANG:
                    await stream.send(b"HTTP/1.1 200 X\r\nContent-Length: 100\r\n\r\n")
                    await anyio.sleep_forever()
                if reply.endswith(CLOSE):
                    await stream.send(reply.removesuffix(CLOSE))
                    return
                await stream.send(reply)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


async def closed_port() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    return f"http://127.0.0.1:{port}"
