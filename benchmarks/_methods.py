"""What the e2e and overhead parts share: one kind of method table, and its entries' parts.

Both parts measure a few ways of doing the same job against one simulator
process: organik_async clients, and the hand-written code a user could write
instead. Each way is a `Method` (a key for ``--methods`` and the ratios, a
name for the tables, and how to open it). The organik_async ones are built
from `ORGANIK_VARIANTS`, one line of client keywords each, so a client setting
worth comparing is one new line there, in both parts' tables. The hand-written
code (and the decode part's bare msgspec decoder) shares `ENVELOPE_DECODER`;
each method's timed calls are kept as `Timings`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import httpx
import msgspec
from httpx_aiohttp import AiohttpTransport

from organik_async import DetailedReport, OrganikClient
from organik_async.testing import DEMO_API_KEY

from ._common import CpuUsage

OpenT = TypeVar("OpenT")


@dataclass(frozen=True, slots=True)
class Method(Generic[OpenT]):
    """One line of a part's table: ``open`` is the part's own kind of opener."""

    key: str
    name: str
    open: OpenT


# --- the organik_async clients ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientVariant:
    """An organik_async client to measure: ``OrganikClient`` keywords beyond the part's own
    (``max_concurrency`` and ``batch_sizes`` in e2e; the variant's win over the part's)."""

    key: str
    name: str
    keywords: Mapping[str, Any] = field(default_factory=dict)
    transport: Callable[[], httpx.AsyncBaseTransport] | None = None
    """Makes the client's ``transport=``: a fresh one per client, which closes it."""

    def client(self, url: str, **part_keywords: Any) -> OrganikClient:
        keywords = {**part_keywords, **self.keywords}
        if self.transport is not None:
            keywords["transport"] = self.transport()
        return OrganikClient(DEMO_API_KEY, base_url=url, **keywords)


ORGANIK_VARIANTS: Final = (
    ClientVariant("organik", "organik_async, defaults (aiohttp when installed)"),
    ClientVariant("organik_httpx", "organik_async, httpx backend", {"http_backend": "httpx"}),
    ClientVariant(
        "organik_aiohttp", "organik_async + httpx-aiohttp's transport", transport=AiohttpTransport
    ),
)
"""The clients both parts measure: the defaults (``http_backend="auto"``: the aiohttp
backend on asyncio, as the ``bench`` extra installs aiohttp; httpx on trio), the httpx
backend (what a trio program, or an install without aiohttp, gets), and httpx with
httpx-aiohttp's transport under it (``transport=AiohttpTransport()``)."""


# --- the hand-written code ----------------------------------------------------------------


class _Response(msgspec.Struct, frozen=True):
    result: bool
    data: list[DetailedReport] = []


class _Envelope(msgspec.Struct, frozen=True):
    response: _Response


ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope, strict=False)
"""One decoder of a whole answer into ``DetailedReport`` Structs, lax like the client's:
the least a hand-written client with typed rows does."""


# --- measuring ----------------------------------------------------------------------------


@dataclass(slots=True)
class Timings:
    """A method's timed calls: wall and CPU seconds of each, and why it stopped, if it did."""

    walls: list[float] = field(default_factory=list, kw_only=True)
    client_cpu: list[float] = field(default_factory=list, kw_only=True)
    server_cpu: list[float] = field(default_factory=list, kw_only=True)
    others_cpu: list[float] = field(default_factory=list, kw_only=True)
    failure: str = field(default="", kw_only=True)

    def record(self, usage: CpuUsage) -> None:
        self.walls.append(usage.wall)
        self.client_cpu.append(usage.client)
        self.server_cpu.append(usage.server)
        self.others_cpu.append(usage.others)

    def share(self, who: str) -> float:
        """``client``, ``server`` or ``others``: CPU seconds as a share of one core."""
        seconds: list[float] = getattr(self, f"{who}_cpu")
        return sum(seconds) / sum(self.walls) if self.walls else 0.0
