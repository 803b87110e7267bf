"""The proxy the environment names for the client's base URL: decided once, used by both backends.

httpx reads ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (in
either case; lower case wins) on its own; aiohttp read only some of them, and
refused a value without a scheme. So neither library reads the environment
here: `environment_proxy()` decides, when the client is made, which proxy (if
any) carries requests to the base URL, exactly as httpx does, and each backend
is handed that answer (httpx as ``proxy=`` with ``trust_env=False``, aiohttp as
its session's ``proxy``). A value no backend can use is a ``ValueError`` naming
the variable then, not a bare exception at the first request.

The rules, as httpx applies them (``tests/contracts`` pins them against httpx):

* the variables are read as the standard library's ``urllib.request.getproxies()``
  reads them (any case, lower case preferred; the system's settings on macOS and
  Windows when no variable is set);
* ``HTTP_PROXY`` serves ``http://`` URLs, ``HTTPS_PROXY`` ``https://`` ones,
  ``ALL_PROXY`` both, the scheme's own variable first; a value without
  ``://`` is an ``http://`` proxy;
* ``NO_PROXY`` is a comma-separated list: ``*`` (no proxy at all), a host name
  (itself and its subdomains; with a leading dot, its subdomains only), an IP
  address, ``localhost``, or a URL (``http://host:port``); a port given must
  match.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import urllib.request
from typing import Final, NamedTuple

import httpx

from .._redact import Secret
from ._urls import url_problem

__all__ = ["PROXY_SCHEMES", "EnvProxy", "environment_proxy"]

PROXY_SCHEMES: Final = ("http", "https", "socks5", "socks5h")
"""The proxies the client sends through (SOCKS on httpx only, with ``httpx[socks]``)."""


class EnvProxy(NamedTuple):
    """The proxy for the base URL, and where it was read."""

    url: httpx.URL
    variable: str
    """The environment variable that named it (as spelt there), or the system's
    proxy settings."""

    @property
    def socks(self) -> bool:
        return self.url.scheme in ("socks5", "socks5h")

    @property
    def shown(self) -> str:
        """The proxy's scheme, host and port: never its credentials."""
        return str(self.url.copy_with(username=None, password=None, path="/")).rstrip("/")


class _Pattern(NamedTuple):
    """One of httpx's proxy mounts: a scheme, a host (``*`` wildcards) and a port."""

    scheme: str
    host: str
    port: int | None
    proxy: EnvProxy | None

    @property
    def priority(self) -> tuple[int, int, int]:
        # As httpx orders its mounts: a port first, then the longer host, then a scheme.
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, url: httpx.URL) -> bool:
        if self.scheme and self.scheme != url.scheme:
            return False
        if self.port is not None and self.port != url.port:
            return False
        if self.host.startswith("*."):  # subdomains only
            return url.host.endswith(self.host[1:]) and len(url.host) > len(self.host) - 1
        if self.host.startswith("*"):  # the name and its subdomains
            name = self.host[1:]
            return url.host == name or url.host.endswith(f".{name}")
        return not self.host or url.host == self.host


def environment_proxy(url: httpx.URL) -> EnvProxy | None:
    """The proxy the environment names for ``url``, or ``None`` (connect directly).

    Raises:
        ValueError: the variable that applies to ``url`` (or ``NO_PROXY``) is
            not a proxy URL either backend can use; the message names it.
    """
    found = {name: Secret(value) for name, value in urllib.request.getproxies().items()}
    bypass = [entry.strip() for entry in found.get("no", "").split(",")]
    if "*" in bypass:
        return None
    patterns: list[_Pattern] = []
    for scheme in ("http", "https", "all"):
        value = found.get(scheme)
        if value:
            proxy = _proxy(value, _variable(f"{scheme}_proxy", value))
            patterns.append(_Pattern("" if scheme == "all" else scheme, "", None, proxy))
    patterns += [_bypass(entry) for entry in bypass if entry]
    patterns.sort(key=lambda pattern: pattern.priority)  # stable, as httpx's sort
    chosen = next((pattern for pattern in patterns if pattern.matches(url)), None)
    return None if chosen is None else chosen.proxy


def _variable(name: str, value: str) -> str:
    """The variable's name as set (``HTTPS_PROXY``, ``https_proxy``, ...)."""
    spelt = [key for key, set_to in os.environ.items() if key.lower() == name and set_to == value]
    if not spelt:
        return "the system's proxy settings"
    return name if name in spelt else spelt[0]


def _proxy(value: str, variable: str) -> EnvProxy:
    # A proxy URL can carry a password: the value is held masked (a traceback's
    # locals show a Secret as '***', an httpx.URL with its password hidden) and
    # never put in a message.
    value = Secret(value if "://" in value else f"http://{value}")
    url = _parsed(value)
    if url is None:  # raised here, outside the parser's except: nothing chained
        raise ValueError(
            f"{variable} is not a valid proxy URL: give scheme://host:port, "
            "such as http://proxy.example:3128"
        )
    if url.scheme not in PROXY_SCHEMES:
        raise ValueError(
            f"{variable} names a {url.scheme}:// proxy; the client sends through "
            "http://, https:// and socks5:// proxies"
        )
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(f"{variable} is not a valid proxy URL ({problem})")
    proxy = EnvProxy(url, variable)
    if proxy.socks and not socks_installed():
        raise ValueError(
            f"{variable} names a SOCKS proxy ({proxy.shown}); sending through it needs "
            "httpx's SOCKS support: pip install 'httpx[socks]'"
        )
    return proxy


def _bypass(entry: str) -> _Pattern:
    """A ``NO_PROXY`` entry as httpx reads it (see curl's CURLOPT_NOPROXY)."""
    if "://" in entry:
        pattern = entry
    elif _is_ipv4(entry) or entry.lower() == "localhost":
        pattern = f"all://{entry}"
    elif _is_ipv6(entry):
        pattern = f"all://[{entry}]"
    else:
        pattern = f"all://*{entry}"
    url = _parsed(pattern)
    if url is None:
        raise ValueError("NO_PROXY has an entry that is not a host name, an address or a URL")
    host = "" if url.host == "*" else url.host
    return _Pattern("" if url.scheme == "all" else url.scheme, host, url.port, None)


def _parsed(value: str) -> httpx.URL | None:
    """``value`` as a URL, or ``None``: httpx's exception (and its half-built URL,
    whose repr fails in a traceback formatted with locals) is not kept."""
    try:
        return httpx.URL(value)
    except (httpx.InvalidURL, ValueError):  # ValueError: an IDNA label refused
        return None


def _is_ipv4(entry: str) -> bool:
    try:
        ipaddress.IPv4Address(entry.split("/")[0])
    except ValueError:
        return False
    return True


def _is_ipv6(entry: str) -> bool:
    try:
        ipaddress.IPv6Address(entry.split("/")[0])
    except ValueError:
        return False
    return True


def socks_installed() -> bool:
    """Whether httpx can send through a SOCKS proxy (``httpx[socks]`` installs socksio)."""
    return importlib.util.find_spec("socksio") is not None
