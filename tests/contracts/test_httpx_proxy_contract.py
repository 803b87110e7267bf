"""httpx routes by the environment's proxy variables exactly as `environment_proxy()` decides.

The client decides the proxy for its base URL once (``_http._proxy``), by the
rules httpx follows with ``trust_env=True``, and hands both backends that
answer. httpx documents ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and
``NO_PROXY``; the finer rules (lower case preferred, a value without a scheme,
how a ``NO_PROXY`` entry matches) are what it does, not what it documents. So
each case here sends a request through a plain ``httpx.AsyncClient`` that reads
the environment itself, sees which of two counting proxies it went through (or
neither), and checks that `environment_proxy()` named the same one. The day
httpx changes a rule, this fails, naming the case and the version.
"""

from __future__ import annotations

import os
from typing import Final

import anyio
import httpx
import pytest

from organik_async._http import environment_proxy
from tests.helpers.wire import answer, wire_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

V: Final = f"httpx {httpx.__version__}"
TARGET: Final = "http://provider.invalid/v2/x/detailedreport/json/"  # RFC 6761: never resolves

# Variables, with A and B standing for the two counting proxies (A_HOSTPORT: A's
# host:port without a scheme).
CASES: Final[dict[str, dict[str, str]]] = {
    "nothing set": {},
    "HTTP_PROXY": {"HTTP_PROXY": "A"},
    "http_proxy": {"http_proxy": "A"},
    "Http_Proxy, mixed case": {"Http_Proxy": "A"},
    "ALL_PROXY": {"ALL_PROXY": "A"},
    "all_proxy": {"all_proxy": "A"},
    "a value without a scheme": {"HTTP_PROXY": "A_HOSTPORT"},
    "lower case over upper": {"HTTP_PROXY": "B", "http_proxy": "A"},
    "the scheme's variable over ALL_PROXY": {"ALL_PROXY": "B", "HTTP_PROXY": "A"},
    "HTTPS_PROXY, not for http://": {"HTTPS_PROXY": "A"},
    "HTTPS_PROXY and ALL_PROXY": {"HTTPS_PROXY": "B", "ALL_PROXY": "A"},
    "NO_PROXY, the host": {"HTTP_PROXY": "A", "NO_PROXY": "provider.invalid"},
    "NO_PROXY, the domain": {"HTTP_PROXY": "A", "NO_PROXY": "invalid"},
    "NO_PROXY, a dot: subdomains": {"HTTP_PROXY": "A", "NO_PROXY": ".invalid"},
    "NO_PROXY, a dot: not the name": {"HTTP_PROXY": "A", "NO_PROXY": ".provider.invalid"},
    "NO_PROXY, a suffix that is no label": {"HTTP_PROXY": "A", "NO_PROXY": "vider.invalid"},
    "NO_PROXY, *": {"ALL_PROXY": "A", "NO_PROXY": "*"},
    "NO_PROXY, * among others": {"ALL_PROXY": "A", "NO_PROXY": "example.com, *"},
    "NO_PROXY, spaces and commas": {
        "ALL_PROXY": "A",
        "NO_PROXY": " example.com , provider.invalid ,",
    },
    "NO_PROXY, other hosts": {"HTTP_PROXY": "A", "NO_PROXY": "example.com,10.0.0.1,::1,localhost"},
    "NO_PROXY, the port": {"HTTP_PROXY": "A", "NO_PROXY": "provider.invalid:80"},
    "NO_PROXY, another port": {"HTTP_PROXY": "A", "NO_PROXY": "provider.invalid:8080"},
    "NO_PROXY, a URL": {"HTTP_PROXY": "A", "NO_PROXY": "http://provider.invalid"},
    "NO_PROXY, a URL of another scheme": {
        "HTTP_PROXY": "A",
        "NO_PROXY": "https://provider.invalid",
    },
    "no_proxy": {"HTTP_PROXY": "A", "no_proxy": "provider.invalid"},
    "an empty lower case value hides the upper": {"HTTP_PROXY": "A", "http_proxy": ""},
}


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)


async def through(target: str) -> str | None:
    """The proxy a plain httpx client reading the environment sent through, if any."""
    async with httpx.AsyncClient(trust_env=True, timeout=5) as client:
        try:
            response = await client.post(target, content=b"{}")
        except httpx.ConnectError:
            return None  # straight to provider.invalid, which does not resolve
    return response.headers["x-proxy"]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
async def test_httpx_routes_as_environment_proxy_decides(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    clean_environment(monkeypatch)
    async with (
        wire_server(lambda _: answer(200, b"", ("X-Proxy", "A"))) as a,
        wire_server(lambda _: answer(200, b"", ("X-Proxy", "B"))) as b,
    ):
        names = {"A": a.url, "B": b.url, "A_HOSTPORT": a.url.removeprefix("http://")}
        for name, value in CASES[case].items():
            monkeypatch.setenv(name, names.get(value, value))
        with anyio.fail_after(20):
            used = await through(TARGET)
    decided = environment_proxy(httpx.URL(TARGET))
    ours = None if decided is None else {a.url: "A", b.url: "B"}[str(decided.url).rstrip("/")]
    assert ours == used, f"{case}: httpx sent through {used}, we decided {ours} ({V})"
