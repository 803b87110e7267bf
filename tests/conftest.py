"""Shared fixtures: every async test runs on asyncio and on trio; every wire test on
each HTTP backend.

A test that takes the ``http_backend`` fixture runs once per backend an event
loop can serve: httpx and aiohttp on asyncio, httpx on trio. The pairing is
made here, in one place, so no test ties a backend to an event loop itself.
"""

from __future__ import annotations

import pytest

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
def http_backend() -> str:
    """The HTTP backend under test (parametrized with the event loop, see below)."""
    raise AssertionError("parametrized by pytest_generate_tests")  # pragma: no cover


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "http_backend" in metafunc.fixturenames:
        metafunc.parametrize(("anyio_backend", "http_backend"), WIRE_BACKENDS)
