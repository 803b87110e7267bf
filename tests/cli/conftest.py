"""The command line's fixtures: the module's server, the key in the environment, and
the environment of a console script run in its own process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from organik_async.testing import DEMO_API_KEY
from tests.helpers.cli import SWITCH, child_env
from tests.helpers.served import served_from_thread


@pytest.fixture(scope="module")
def server() -> Iterator[None]:
    """The simulator's server over TCP on 127.0.0.1 for the module (see `served`)."""
    with served_from_thread(SWITCH) as base_url:
        SWITCH.url = base_url
        yield


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The demo key in ``ORGANIK_API_KEY``, no base URL, a terminal 120 columns wide."""
    monkeypatch.setenv("ORGANIK_API_KEY", DEMO_API_KEY)
    monkeypatch.delenv("ORGANIK_BASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    return DEMO_API_KEY


@pytest.fixture
def env() -> dict[str, str]:
    """The environment of the console script in its own process, 160 columns wide."""
    return child_env(COLUMNS="160")
