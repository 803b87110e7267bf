"""Which hosts and ports both HTTP libraries can connect to, checked before any request.

httpx and aiohttp parse URLs differently (httpx's own parser, yarl), and each
accepts some URLs it then cannot send to: a port over 65535 passes both
parsers and fails the first request outside any documented exception (an
``OverflowError`` in a task group, a bare ``ValueError``); an empty DNS label,
or one over 63 characters, fails in aiohttp's IDNA encoding. `url_problem()`
states the rules once, for the client's ``base_url`` and for a proxy taken
from the environment, so such a URL is refused when the client is made.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

import httpx

__all__ = ["url_problem"]

_LABEL: Final = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?")
_MAX_LABEL: Final = 63
_MAX_NAME: Final = 253  # RFC 1035: 255 octets on the wire, 253 characters written


def url_problem(url: httpx.URL) -> str | None:
    """What is wrong with ``url``'s host or port for either library, or ``None``.

    A port is 1 to 65535. A host is an IP address, or a DNS name of labels of 1
    to 63 letters, digits, hyphens (not at either end) or underscores, at most
    253 characters; a name whose last label is a number is read as an IPv4
    address by URL parsers that follow the WHATWG standard, so it must be one.
    """
    port = url.port
    if port is not None and not 1 <= port <= 65535:
        return f"port {port} is not between 1 and 65535"
    host = url.raw_host.decode("ascii")  # an internationalised name as sent: xn--…
    if not host:
        return "no host"
    if ":" in host:  # an IPv6 literal: httpx.URL has checked it
        return None
    name = host.removesuffix(".")
    if len(name) > _MAX_NAME:
        return f"the host name is longer than {_MAX_NAME} characters"
    labels = name.split(".")
    for label in labels:
        if not label:
            return "the host name has an empty label (two dots in a row, or a leading dot)"
        if len(label) > _MAX_LABEL:
            return f"a label of the host name is longer than {_MAX_LABEL} characters"
        if not _LABEL.fullmatch(label):
            return "the host name has a character other than a letter, digit, '-' or '_'"
    try:
        url.host  # noqa: B018 - decodes the xn-- labels
    except ValueError:  # idna's IDNAError
        return "a label of the host name is not a valid internationalised (xn--) label"
    if labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return "the host ends in a number but is not an IPv4 address"
    return None
