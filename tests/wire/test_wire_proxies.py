"""The environment's proxy: the same variables, read the same way, on every backend.

A proxy on 127.0.0.1 (the raw wire server, answering as the provider would)
counts what passes through it: a request sent through a proxy names the whole
URL in its request line (``POST http://provider.invalid/v2/...``). Each case
sets the variables one way and checks, on every backend, whether the request
went through the proxy or straight to the base URL; the rules are httpx's (the
contract tests pin them against httpx itself). A value no backend can use is a
``ValueError`` naming the variable when the client is made, never showing the
key, and formattable with its locals.
"""

from __future__ import annotations

import base64
import os
import traceback

import anyio
import pytest

from organik_async import EndpointUnreachableError, HttpBackend, OrganikClient, TransportError
from tests.helpers.provider import KEY
from tests.helpers.secrets import key_runs
from tests.helpers.wire import answer, client, wire_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, a request sent there fails
PROVIDER = "http://provider.invalid"  # RFC 6761: never resolves, so "direct" fails visibly


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of the machine's own leaks into a case."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)


# (variables, base URL, through the proxy?): PROXY stands for the counting proxy's URL,
# HOSTPORT for its host:port without a scheme.
CASES: dict[str, tuple[dict[str, str], str, bool]] = {
    "HTTP_PROXY": ({"HTTP_PROXY": "PROXY"}, PROVIDER, True),
    "http_proxy, lower case": ({"http_proxy": "PROXY"}, PROVIDER, True),
    "ALL_PROXY": ({"ALL_PROXY": "PROXY"}, PROVIDER, True),
    "all_proxy, lower case": ({"all_proxy": "PROXY"}, PROVIDER, True),
    "a value without a scheme": ({"http_proxy": "HOSTPORT"}, PROVIDER, True),
    "lower case wins over upper": ({"HTTP_PROXY": DEAD, "http_proxy": "PROXY"}, PROVIDER, True),
    "the scheme's own variable wins over ALL_PROXY": (
        {"ALL_PROXY": DEAD, "HTTP_PROXY": "PROXY"},
        PROVIDER,
        True,
    ),
    "HTTPS_PROXY serves https:// only": ({"HTTPS_PROXY": "PROXY"}, PROVIDER, False),
    "NO_PROXY names the host": (
        {"HTTP_PROXY": "PROXY", "NO_PROXY": "provider.invalid"},
        PROVIDER,
        False,
    ),
    "no_proxy, lower case": (
        {"HTTP_PROXY": "PROXY", "no_proxy": "provider.invalid"},
        PROVIDER,
        False,
    ),
    "NO_PROXY names the domain": ({"ALL_PROXY": "PROXY", "NO_PROXY": "invalid"}, PROVIDER, False),
    "NO_PROXY with a dot: subdomains": (
        {"HTTP_PROXY": "PROXY", "NO_PROXY": ".invalid"},
        PROVIDER,
        False,
    ),
    "NO_PROXY with a dot, not the name itself": (
        {"HTTP_PROXY": "PROXY", "NO_PROXY": ".provider.invalid"},
        PROVIDER,
        True,
    ),
    "NO_PROXY=*": ({"HTTP_PROXY": "PROXY", "NO_PROXY": "*"}, PROVIDER, False),
    "NO_PROXY for another host": (
        {"HTTP_PROXY": "PROXY", "NO_PROXY": "example.com,10.0.0.1"},
        PROVIDER,
        True,
    ),
    "NO_PROXY for another port": (
        {"HTTP_PROXY": "PROXY", "NO_PROXY": "provider.invalid:8080"},
        PROVIDER,
        True,
    ),
    "NO_PROXY as a URL": (
        {"HTTP_PROXY": "PROXY", "NO_PROXY": "http://provider.invalid"},
        PROVIDER,
        False,
    ),
}


def filled(variables: dict[str, str], proxy: str) -> dict[str, str]:
    hostport = proxy.removeprefix("http://")
    return {
        name: value.replace("PROXY", proxy).replace("HOSTPORT", hostport)
        if value in ("PROXY", "HOSTPORT")
        else value
        for name, value in variables.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
async def test_the_environment_routes_every_backend_as_httpx_does(
    monkeypatch: pytest.MonkeyPatch, http_backend: HttpBackend, case: str
) -> None:
    variables, base_url, proxied = CASES[case]
    clean_environment(monkeypatch)
    async with wire_server(lambda _: answer()) as proxy:
        for name, value in filled(variables, proxy.url).items():
            monkeypatch.setenv(name, value)
        async with client(base_url, http_backend, max_retries=0, unreachable_after=1) as c:
            with anyio.fail_after(20):
                try:
                    outcome: object = await c.detailed_report(transaction_ids=[1])
                except TransportError as exc:
                    outcome = exc
    if proxied:
        assert isinstance(outcome, list), outcome
        [head] = proxy.heads
        assert head.startswith(b"POST http://provider.invalid/v2/")  # the absolute form
    else:
        assert proxy.heads == []
        assert isinstance(outcome, EndpointUnreachableError), outcome  # straight to the host
        assert "name not resolved" in str(outcome)


REFUSED: dict[str, tuple[dict[str, str], str]] = {
    "a URL that does not parse": ({"HTTP_PROXY": "http://[::1"}, "HTTP_PROXY is not a valid"),
    "lower case, named as spelt": ({"http_proxy": "http://[::1"}, "http_proxy is not a valid"),
    "a port out of range": ({"ALL_PROXY": "http://proxy.example:70000"}, "ALL_PROXY is not"),
    "a scheme no backend speaks": ({"HTTP_PROXY": "ftp://proxy.example"}, "ftp:// proxy"),
    "SOCKS without its extra": ({"ALL_PROXY": "socks5://proxy.example:1080"}, "httpx[socks]"),
    "a NO_PROXY entry that does not parse": (
        {"HTTP_PROXY": "http://proxy.example", "NO_PROXY": "[::1"},
        "NO_PROXY",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
@pytest.mark.parametrize("backend", ["auto", "httpx", "aiohttp"])
def test_a_proxy_no_backend_can_use_is_a_value_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, case: str, backend: HttpBackend
) -> None:
    variables, named = REFUSED[case]
    clean_environment(monkeypatch)
    monkeypatch.setattr("organik_async._http._proxy.socks_installed", lambda: False)
    for name, value in variables.items():
        # A password in the proxy URL: shown nowhere either (the key stands in for it).
        monkeypatch.setenv(name, value.replace("://proxy", f"://user:{KEY}@proxy"))
    with pytest.raises(ValueError, match=r"PROXY|proxy") as refused:
        OrganikClient(KEY, base_url=PROVIDER, http_backend=backend)
    assert named in str(refused.value)
    shown = "".join(
        traceback.TracebackException.from_exception(refused.value, capture_locals=True).format()
    )
    assert not key_runs(shown)


def test_a_socks_proxy_is_refused_by_the_aiohttp_backend_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiohttp speaks to HTTP proxies only; with httpx's SOCKS extra, "auto" sends
    through httpx. (Without the extra every backend refuses, as above.)"""
    clean_environment(monkeypatch)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.setattr("organik_async._http._proxy.socks_installed", lambda: True)
    with pytest.raises(ValueError, match="ALL_PROXY names a SOCKS proxy") as refused:
        OrganikClient(KEY, base_url=PROVIDER, http_backend="aiohttp")
    assert "use 'auto' or 'httpx'" in str(refused.value)
    assert OrganikClient(KEY, base_url=PROVIDER)._requester.sender.name == "httpx"


async def test_credentials_in_the_proxy_url_reach_the_proxy_on_every_backend(
    monkeypatch: pytest.MonkeyPatch, http_backend: HttpBackend
) -> None:
    clean_environment(monkeypatch)
    async with wire_server(lambda _: answer()) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("://", "://us%40er:p%3Ass@"))
        async with client(PROVIDER, http_backend) as c:
            with anyio.fail_after(10):
                assert len(await c.detailed_report(transaction_ids=[1])) == 1
    [head] = proxy.heads
    expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    lines = [line.split(":", 1) for line in head.decode().split("\r\n")[1:]]
    assert {name.lower(): value.strip() for name, value in lines}["proxy-authorization"] == expected
