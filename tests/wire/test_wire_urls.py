"""Base URLs: refused when the client is made, or failing inside the error tree.

Either HTTP library accepts some URLs it then cannot send to (a port over
65535, an empty or over-long DNS label, a host ending in a number that is no
IPv4 address). The constructor refuses each with a ``ValueError`` naming
``base_url``; and whatever a library still raises for a URL while sending is
an error of the tree, never a bare ``ValueError`` or ``ExceptionGroup``.
"""

from __future__ import annotations

import traceback

import anyio
import pytest

from organik_async import HttpBackend, OrganikClient, TransportError
from tests.helpers.provider import KEY
from tests.helpers.secrets import key_runs
from tests.helpers.wire import client

pytestmark = [pytest.mark.timeout(60)]

REFUSED = {
    "http://127.0.0.1:65536": "port 65536",
    "http://[::1]:65536": "port 65536",
    "http://127.0.0.1:99999999999": "port 99999999999",
    "http://127.0.0.1:0": "port 0",
    "http://provider..example": "empty label",
    "http://" + "a" * 64 + ".example": "longer than 63",
    "http://" + ("a" * 60 + ".") * 5 + "example": "longer than 253",
    "http://1.2.3.4.5": "not an IPv4 address",
    "http://0x7f.1": "not an IPv4 address",
    "http://xn--zz.example": "xn--",
    "http://exa_mple.ex!ample": "not a valid URL",
    "http://[::1": "not a valid URL",  # httpx's half-built URL must not be chained
}


@pytest.mark.parametrize(("url", "reason"), list(REFUSED.items()))
def test_a_base_url_no_backend_can_send_to_is_refused_at_construction(
    url: str, reason: str
) -> None:
    backends: tuple[HttpBackend, ...] = ("httpx", "aiohttp", "auto")
    for backend in backends:
        with pytest.raises(ValueError, match="base_url") as refused:
            OrganikClient(KEY, base_url=url, http_backend=backend)
        assert reason in str(refused.value)
        shown = "".join(
            traceback.TracebackException.from_exception(refused.value, capture_locals=True).format()
        )
        assert not key_runs(shown)


@pytest.mark.parametrize(
    "url",
    [
        "http://provider.example",
        "http://provider.example.:8080",
        "https://xn--bcher-kva.example/prefix",  # an internationalised name, as sent
        "http://under_score.example",
        "http://10.0.0.1:1",
        "http://[::1]:65535",
        "http://" + "a" * 63 + ".example",
    ],
)
def test_a_base_url_both_backends_can_send_to_is_accepted(url: str) -> None:
    assert OrganikClient(KEY, base_url=url).base_url == url


@pytest.mark.anyio
async def test_what_a_backend_raises_for_a_url_is_an_error_of_the_tree(
    http_backend: HttpBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL both libraries parse but cannot connect to, past the constructor's checks
    (the check is bypassed here, as a future library version might disagree with it)."""
    monkeypatch.setattr("organik_async._client.url_problem", lambda url: None)
    async with client("http://127.0.0.1:65536", http_backend, max_retries=3) as c:
        with anyio.fail_after(10), pytest.raises(TransportError) as caught:
            await c.detailed_report(transaction_ids=[1])
    error = caught.value
    # asyncio's socket layer refuses the port (a ValueError, or an OverflowError in a
    # task group), trio's wraps it round to a port that refuses the connection.
    assert str(error).startswith("could not connect (")
    assert error.attempts >= 1
    assert error.__cause__ is None
    assert error.__context__ is None
    assert not key_runs(repr(vars(error)))
