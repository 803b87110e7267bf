"""End to end over real TCP: organik_async against the loops a performance-minded user writes.

``python -m benchmarks e2e``. The simulator serves a 200 000-row dataset from
its own process (``python -m organik_async.testing serve``, uvicorn, pinned to
CPU 1); this process, pinned to CPU 0, fetches every row by GSM track ID (one
row per ID), 500 IDs per request, with 8 and then 64 requests in flight, and
ends with every row decoded in one list:

* **organik_async**: ``await client.detailed_report(gsm_track_ids=ids)`` on a
  client with ``max_concurrency=C`` and 500 IDs per batch: with its defaults
  (``http_backend="auto"``: aiohttp, which the ``bench`` extra installs), with
  ``http_backend="httpx"``, and with httpx-aiohttp's transport under httpx; these
  lines, and any other client setting worth one, come from
  `benchmarks._methods.ORGANIK_VARIANTS`;
* **httpx loop**: ``asyncio.gather`` over the batches, an ``asyncio.Semaphore(C)``,
  ``httpx.AsyncClient.post(json=...)`` and ``json.loads`` (one client whose
  limits allow C connections, all kept alive);
* **aiohttp + orjson loop**: the same loop on an ``aiohttp.ClientSession``
  (``TCPConnector(limit=C)``), bodies by ``orjson``;
* **aiohttp + msgspec Structs loop**: the same, rows decoded by one
  ``msgspec.json.Decoder`` into ``DetailedReport`` Structs: the limit for this
  design (typed rows, asyncio, one core).

Each method opens its client, makes C untimed requests (so the timed call
measures fetching, not TCP set-up), then fetches all the rows, timed. Rows/s
is from wall time; client CPU µs/row from this process's CPU time, which the
host's stalls do not inflate. The methods take turns, round after round
(order reversed every other round), so a slow phase of a shared machine
spreads over all of them; every timed call is checked to have received every
row.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from statistics import median
from typing import Any, Final

import aiohttp
import httpx
import msgspec
import orjson

from organik_async import BatchSizes
from organik_async.testing import Dataset

from ._common import (
    CpuMeter,
    CpuUsage,
    Log,
    SimulatorServer,
    failure_text,
    in_turns,
    percent,
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

DEFAULT_ROWS: Final = 200_000
DEFAULT_BATCH: Final = 500
DEFAULT_CONCURRENCY: Final = (8, 64)
TIMEOUT: Final = 120.0

Fetch = Callable[[Sequence[int | str]], Awaitable[list[Any]]]
"""Fetch every row for these GSM track IDs; the rows in one list."""
Opener = Callable[[str, int, int], AbstractAsyncContextManager[Fetch]]
"""(base URL, concurrency, batch size) -> an open method, closed on exit."""


# --- organik_async ----------------------------------------------------------------------


def organik_method(variant: ClientVariant) -> Method[Opener]:
    """``await client.detailed_report(gsm_track_ids=ids)``, every row in one list."""

    @asynccontextmanager
    async def open_client(url: str, concurrency: int, batch: int) -> AsyncIterator[Fetch]:
        batch_sizes = BatchSizes(gsm_track_ids=batch)
        async with variant.client(
            url, max_concurrency=concurrency, batch_sizes=batch_sizes
        ) as client:

            async def fetch(ids: Sequence[int | str]) -> list[Any]:
                return list(await client.detailed_report(gsm_track_ids=ids))

            yield fetch

    return Method(variant.key, variant.name, open_client)


# --- hand-written loops -------------------------------------------------------------------


def _batches(ids: Sequence[int | str], size: int) -> list[list[int | str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


async def _gather(
    ids: Sequence[int | str],
    batch: int,
    concurrency: int,
    one: Callable[[list[int | str]], Awaitable[list[Any]]],
) -> list[Any]:
    """The loop a user writes: ``asyncio.gather`` over the batches, C at a time under an
    ``asyncio.Semaphore``, the rows in one list."""
    semaphore = asyncio.Semaphore(concurrency)

    async def limited(batch_ids: list[int | str]) -> list[Any]:
        async with semaphore:
            return await one(batch_ids)

    answers = await asyncio.gather(*(limited(b) for b in _batches(ids, batch)))
    return [row for rows in answers for row in rows]


@asynccontextmanager
async def httpx_loop(url: str, concurrency: int, batch: int) -> AsyncIterator[Fetch]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=TIMEOUT) as http:
        path = report_path()

        async def one(batch_ids: list[int | str]) -> list[Any]:
            response = await http.post(path, json={"data": {"gsm_track_ids": batch_ids}})
            response.raise_for_status()
            rows: list[Any] = json.loads(response.content)["response"]["data"]
            return rows

        yield lambda ids: _gather(ids, batch, concurrency, one)


_JSON_HEADERS: Final = {"Content-Type": "application/json"}


def aiohttp_loop(encode: Callable[[Any], bytes], rows_of: Callable[[bytes], list[Any]]) -> Opener:
    """The same loop on an ``aiohttp.ClientSession`` (``TCPConnector(limit=C)``), bodies
    encoded by ``encode`` and answers read by ``rows_of``."""

    @asynccontextmanager
    async def open_loop(url: str, concurrency: int, batch: int) -> AsyncIterator[Fetch]:
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
            path = report_path()

            async def one(batch_ids: list[int | str]) -> list[Any]:
                body = encode({"data": {"gsm_track_ids": batch_ids}})
                async with session.post(path, data=body, headers=_JSON_HEADERS) as response:
                    response.raise_for_status()
                    return rows_of(await response.read())

            yield lambda ids: _gather(ids, batch, concurrency, one)

    return open_loop


def _orjson_rows(body: bytes) -> list[Any]:
    rows: list[Any] = orjson.loads(body)["response"]["data"]
    return rows


def _struct_rows(body: bytes) -> list[Any]:
    return ENVELOPE_DECODER.decode(body).response.data


METHODS: Final[tuple[Method[Opener], ...]] = (
    *(organik_method(variant) for variant in ORGANIK_VARIANTS),
    Method("httpx_loop", "hand-written httpx loop (gather + semaphore, json.loads)", httpx_loop),
    Method(
        "aiohttp_orjson",
        "hand-written aiohttp + orjson loop",
        aiohttp_loop(orjson.dumps, _orjson_rows),
    ),
    Method(
        "aiohttp_msgspec",
        "hand-written aiohttp + msgspec Structs (the limit for this design)",
        aiohttp_loop(msgspec.json.encode, _struct_rows),
    ),
)
METHOD_KEYS: Final = tuple(m.key for m in METHODS)


# --- measuring --------------------------------------------------------------------------


@dataclass(slots=True)
class Point(Timings):
    """One method at one concurrency, over the rounds."""

    method: str
    name: str
    concurrency: int
    rows: int = 0

    def add(self, usage: CpuUsage, rows: int) -> None:
        self.rows = rows
        self.record(usage)

    @property
    def rows_per_second(self) -> float:
        return self.rows / median(self.walls) if self.walls else float("nan")

    @property
    def rows_per_second_each(self) -> list[float]:
        return [self.rows / w for w in self.walls]

    @property
    def client_us_per_row(self) -> float:
        return median(self.client_us_per_row_each) if self.walls else float("nan")

    @property
    def client_us_per_row_each(self) -> list[float]:
        return [c / self.rows * 1e6 for c in self.client_cpu]

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "name": self.name,
            "concurrency": self.concurrency,
            "rows": self.rows,
            "rows_per_second": self.rows_per_second,
            "rows_per_second_spread": spread(self.rows_per_second_each),
            "client_us_per_row": self.client_us_per_row,
            "client_us_per_row_spread": spread(self.client_us_per_row_each),
            "walls": self.walls,
            "client_cpu": self.client_cpu,
            "server_cpu": self.server_cpu,
            "others_cpu": self.others_cpu,
            "client_share": self.share("client"),
            "server_share": self.share("server"),
            "others_share": self.share("others"),
            "failure": self.failure,
        }


def _track_id(row: Any) -> str:
    value = row["gsm_track_id"] if isinstance(row, dict) else row.gsm_track_id
    return str(value)


def check_rows(rows: Sequence[Any], expected: frozenset[str], method: str) -> None:
    """Every row received, each once: a method that lost one has no figure."""
    got = {_track_id(row) for row in rows}
    if len(rows) != len(expected) or got != expected:
        raise RuntimeError(
            f"{method}: {len(rows):,} rows, {len(got & expected):,} of the {len(expected):,} "
            "expected track IDs"
        )


async def measure(
    method: Method[Opener],
    url: str,
    ids: Sequence[int | str],
    concurrency: int,
    batch: int,
    server_pid: int,
    profiler: cProfile.Profile | None = None,
) -> tuple[CpuUsage, list[Any]]:
    """Open ``method``, warm it with C untimed requests (its connections open), then time
    fetching every row of ``ids``: the CPU and wall time, and the rows. A ``profiler``
    runs during the timed fetch only."""
    async with method.open(url, concurrency, batch) as fetch:
        await fetch(ids[: concurrency * batch])  # untimed: opens the connections
        gc.collect()
        meter = CpuMeter(server_pid)
        if profiler is not None:
            profiler.enable()
        rows = await fetch(ids)
        if profiler is not None:
            profiler.disable()
        usage = meter.stop()
    return usage, rows


def run_e2e(
    *,
    rows: int,
    batch: int,
    levels: Sequence[int],
    rounds: int,
    methods: Sequence[Method[Opener]],
    pin: bool,
    log: Log,
    before_round: Callable[[], object] = lambda: None,
) -> list[Point]:
    """Every method at every level, ``rounds`` times, taking turns; ``before_round`` runs
    before each round (the suite's ``--wait-quiet`` waits there for an idle machine)."""
    dataset_ids = list(Dataset.generate(rows).gsm_track_ids())
    expected = frozenset(str(i) for i in dataset_ids)
    cases = [(m, c) for c in levels for m in methods]
    points = {(m.key, c): Point(m.key, m.name, c) for m, c in cases}
    with SimulatorServer(rows, pin=pin) as server:
        log(f"e2e: {rows:,}-row server up in {server.startup_seconds:.1f}s at {server.url}")
        for round_, (method, c) in in_turns(cases, rounds, before_round):
            point = points[(method.key, c)]
            if point.failure:
                continue
            try:
                usage, got = asyncio.run(
                    measure(method, server.url, dataset_ids, c, batch, server.pid)
                )
                check_rows(got, expected, method.name)
            except Exception as exc:  # recorded in the table, not fatal to the suite
                point.failure = failure_text(exc)
                log(f"  {method.key} C={c} FAILED: {point.failure}")
                continue
            del got
            point.add(usage, rows)
            log(
                f"  round {round_ + 1} C={c:<3} {method.key:<16} "
                f"{rows / usage.wall:>9,.0f} rows/s  {usage.client / rows * 1e6:6.2f} µs/row "
                f"client {percent(usage.share(usage.client))} "
                f"server {percent(usage.share(usage.server))} "
                f"others {percent(usage.share(usage.others))}"
            )
    return list(points.values())
