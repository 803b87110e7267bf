"""Per-request overhead: one ID per request, one-row answers, one request at a time.

``python -m benchmarks overhead``. With tiny answers nothing but the request
path is left to measure: what organik_async adds around one POST (argument
checks, batching, the throttles, retries' bookkeeping, reading, decoding)
compared with a bare ``httpx.AsyncClient.post``. Each method sends
the same requests in sequence over one kept-alive connection to the simulator
(its own process, pinned to the other CPU); the figure is this process's CPU
time per request.

* **httpx post**: ``await http.post(url, content=body, headers=...)``, then
  ``response.content``: the floor of anything built on httpx;
* **httpx post + msgspec decode**: the same, and the row decoded into a
  ``DetailedReport`` (what a minimal typed client must do);
* **organik_async**: ``await client.detailed_report(gsm_track_ids=[one_id])``
  with its defaults (aiohttp), on the httpx backend, with httpx-aiohttp's
  transport, and with ``max_concurrency=1``;
* **aiohttp post** (bytes read): the floor of the aiohttp backend.

The organik_async lines are `benchmarks._methods.ORGANIK_VARIANTS` (the
clients the e2e part measures) and the one-worker client.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from statistics import median
from typing import Any, Final

import aiohttp
import httpx
import msgspec

from organik_async.testing import Dataset

from ._common import (
    CpuMeter,
    CpuUsage,
    Log,
    SimulatorServer,
    failure_text,
    in_turns,
    report_path,
    spread,
)
from ._methods import (
    ENVELOPE_DECODER,
    ORGANIK_VARIANTS,
    ClientVariant,
    Method,
    Timings,
)

DEFAULT_REQUESTS: Final = 1_000
DATASET_ROWS: Final = 10_000
TIMEOUT: Final = 60.0
_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json"}

Send = Callable[[int | str], Awaitable[int]]
"""One request for one GSM track ID; returns the rows (or bytes) it received."""
Opener = Callable[[str], AbstractAsyncContextManager[Send]]


def _body(track_id: int | str) -> bytes:
    return msgspec.json.encode({"data": {"gsm_track_ids": [track_id]}})


def httpx_post(read: Callable[[bytes], int]) -> Opener:
    """A bare ``httpx.AsyncClient.post`` of each body, the answer given to ``read``."""

    @asynccontextmanager
    async def open_client(url: str) -> AsyncIterator[Send]:
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            path = report_path()

            async def send(track_id: int | str) -> int:
                response = await http.post(path, content=_body(track_id), headers=_HEADERS)
                response.raise_for_status()
                return read(response.content)

            yield send

    return open_client


def _bytes_read(content: bytes) -> int:
    return 1 if content else 0


def _rows_decoded(content: bytes) -> int:
    return len(ENVELOPE_DECODER.decode(content).response.data)


def organik_method(variant: ClientVariant) -> Method[Opener]:
    """``await client.detailed_report(gsm_track_ids=[one_id])``."""

    @asynccontextmanager
    async def open_client(url: str) -> AsyncIterator[Send]:
        async with variant.client(url) as client:

            async def send(track_id: int | str) -> int:
                return len(await client.detailed_report(gsm_track_ids=[track_id]))

            yield send

    return Method(variant.key, variant.name, open_client)


ONE_WORKER: Final = ClientVariant(
    "organik_one_worker", "organik_async, max_concurrency=1", {"max_concurrency": 1}
)


@asynccontextmanager
async def aiohttp_post(url: str) -> AsyncIterator[Send]:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(url, timeout=timeout) as session:
        path = report_path()

        async def send(track_id: int | str) -> int:
            async with session.post(path, data=_body(track_id), headers=_HEADERS) as response:
                response.raise_for_status()
                return _bytes_read(await response.read())

        yield send


METHODS: Final[tuple[Method[Opener], ...]] = (
    Method("httpx_post", "bare httpx.AsyncClient.post (bytes read)", httpx_post(_bytes_read)),
    Method("httpx_post_decode", "bare httpx post + msgspec decode", httpx_post(_rows_decoded)),
    *(organik_method(variant) for variant in (*ORGANIK_VARIANTS, ONE_WORKER)),
    Method("aiohttp_post", "bare aiohttp ClientSession.post (bytes read)", aiohttp_post),
)


@dataclass(slots=True)
class Point(Timings):
    method: str
    name: str
    requests: int = 0

    def add(self, usage: CpuUsage, requests: int) -> None:
        self.requests = requests
        self.record(usage)

    @property
    def us_per_request_each(self) -> list[float]:
        return [c / self.requests * 1e6 for c in self.client_cpu]

    @property
    def us_per_request(self) -> float:
        return median(self.us_per_request_each) if self.client_cpu else float("nan")

    @property
    def wall_us_per_request(self) -> float:
        return median([w / self.requests * 1e6 for w in self.walls]) if self.walls else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "name": self.name,
            "requests": self.requests,
            "client_us_per_request": self.us_per_request,
            "client_us_per_request_spread": spread(self.us_per_request_each),
            "wall_us_per_request": self.wall_us_per_request,
            "client_cpu": self.client_cpu,
            "walls": self.walls,
            "others_cpu": self.others_cpu,
            "failure": self.failure,
        }


async def _measure(
    method: Method[Opener], url: str, ids: Sequence[int | str], server_pid: int
) -> tuple[CpuUsage, int]:
    async with method.open(url) as send:
        for track_id in ids[:20]:  # untimed: connection, imports, caches
            await send(track_id)
        gc.collect()
        meter = CpuMeter(server_pid)
        got = 0
        for track_id in ids:
            got += await send(track_id)
        usage = meter.stop()
    if got != len(ids):
        raise RuntimeError(f"{method.name}: {got} answers for {len(ids)} requests")
    return usage, len(ids)


def run_overhead(
    *,
    requests: int,
    rounds: int,
    methods: Sequence[Method[Opener]],
    pin: bool,
    log: Log,
    before_round: Callable[[], object] = lambda: None,
) -> list[Point]:
    ids = list(Dataset.generate(DATASET_ROWS).gsm_track_ids())[:requests]
    points = {m.key: Point(m.key, m.name) for m in methods}
    with SimulatorServer(DATASET_ROWS, pin=pin) as server:
        log(f"overhead: server up in {server.startup_seconds:.1f}s at {server.url}")
        for round_, method in in_turns(methods, rounds, before_round):
            point = points[method.key]
            if point.failure:
                continue
            try:
                usage, count = asyncio.run(_measure(method, server.url, ids, server.pid))
            except Exception as exc:  # recorded in the table, not fatal to the suite
                point.failure = failure_text(exc)
                log(f"  {method.key} FAILED: {point.failure}")
                continue
            point.add(usage, count)
            log(
                f"  round {round_ + 1} {method.key:<18} "
                f"{usage.client / count * 1e6:7.1f} µs CPU/request, "
                f"{usage.wall / count * 1e6:7.1f} µs wall/request"
            )
    return list(points.values())
