"""Serving an app over real TCP with uvicorn, from any async backend.

uvicorn runs only on asyncio, but our tests (and users') also run on trio.
So the server runs in a thread with its own event loop, on a socket bound
here to 127.0.0.1 (port 0 picks a free one), and the caller only waits for
it, with ``anyio``, which works from any backend.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from ._asgi import ASGIApp

if TYPE_CHECKING:
    import uvicorn

__all__ = ["serve"]

_DROPPED_MESSAGE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """Hide uvicorn's error line for a dropped connection: here it is on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROPPED_MESSAGE


_filter = _QuietDrops()
_filter_lock = threading.Lock()
_filter_users = 0


def _quiet_drops(on: bool) -> None:
    """Install the filter while at least one server runs, and only then."""
    global _filter_users
    logger = logging.getLogger("uvicorn.error")
    with _filter_lock:
        _filter_users += 1 if on else -1
        if on and _filter_users == 1:
            logger.addFilter(_filter)
        elif not on and _filter_users == 0:
            logger.removeFilter(_filter)


def _import_uvicorn() -> None:
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise ImportError(
            "serving the simulator over TCP needs uvicorn: "
            "the testing extra, organik_async[testing]"
        ) from None


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only
    # when the protocol says TCP, and without it every small answer (headers
    # and body are two writes) waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def make_server(app: ASGIApp, *, log_level: str, shutdown_timeout: float) -> uvicorn.Server:
    """A uvicorn server for ``app``: no access log, no lifespan, no websockets.

    ``log_config=None`` keeps uvicorn from re-running ``dictConfig`` on the
    whole process for every server; its records go to the root logger, where
    the application's (or pytest's) handlers see them.
    """
    _import_uvicorn()
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,  # leave the process's logging alone; records propagate
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=max(1, round(shutdown_timeout)),
    )
    return uvicorn.Server(config)


def base_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@asynccontextmanager
async def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 5.0,
) -> AsyncIterator[str]:
    """Serve an app over TCP with uvicorn for the duration of the block.

    ```python
    async with serve(fake) as base_url:
        async with OrganikClient(fake.api_key, base_url=base_url) as client:
            ...
    ```

    On exit it stops the server and waits for its thread (requests still running get
    ``shutdown_timeout`` seconds). Works under asyncio and trio: uvicorn runs in a thread
    on its own loop. Needs the ``testing`` extra (uvicorn).

    Args:
        app: the ASGI app (a [`FakeOrganikAPI`][organik_async.testing.FakeOrganikAPI]).
        host: the address to listen on.
        port: the port; 0 picks a free one.
        log_level: uvicorn's log level.
        startup_timeout: seconds to wait for the server to accept connections.
        shutdown_timeout: seconds requests still running get when the block ends.

    Yields:
        The base URL, ``"http://127.0.0.1:PORT"``, once the server accepts connections.

    Raises:
        RuntimeError: the server failed to start.
        TimeoutError: it did not accept connections within ``startup_timeout``.
    """
    server = make_server(app, log_level=log_level, shutdown_timeout=shutdown_timeout)
    sock = bind_socket(host, port)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup failure
            failure.append(exc)

    thread = threading.Thread(target=run, name="organik-fake-server", daemon=True)
    _quiet_drops(True)
    try:
        thread.start()
        with anyio.fail_after(startup_timeout):
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError(f"the simulator's server failed to start: {failure!r}")
                await anyio.sleep(0.005)
        yield base_url(sock)
    finally:
        server.should_exit = True
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join, shutdown_timeout + 5.0)
        sock.close()
        _quiet_drops(False)
