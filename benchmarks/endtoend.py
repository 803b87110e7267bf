"""End to end over real TCP: organik_async against the loops a performance-minded user writes.

``python -m benchmarks e2e``. The simulator serves a 200 000-row dataset from
its own process (``python -m organik_async.testing serve``, uvicorn, pinned to
CPU 1); this process, pinned to CPU 0, fetches every row by GSM track ID (one
row per ID), 500 IDs per request, with 8 and then 64 requests in flight, and
ends with every row decoded in one list:

* **organik_async, defaults**: ``await client.detailed_report(gsm_track_ids=ids)``
  on a client with ``max_concurrency=C`` and 500 IDs per batch, its own pools;
* **organik_async + aiohttp transport**: the same with
  ``transport=httpx_aiohttp.AiohttpTransport()`` (the ``aiohttp`` extra), as the
  README shows it; these two, and any other client setting worth a line, come
  from :data:`benchmarks._methods.ORGANIK_VARIANTS`;
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
import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import httpx
import msgspec
import orjson

from organik_async import BatchSizes, DetailedReport
from organik_async.testing import Dataset

from ._common import (
    DISTURBED,
    DISTURBED_NOTE,
    CpuMeter,
    CpuUsage,
    Log,
    SimulatorServer,
    failure_text,
    in_turns,
    markdown_table,
    median,
    others_cell,
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


def _batches(ids: Sequence[int | str], size: int) -> list[list[int | str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


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


@asynccontextmanager
async def httpx_loop(url: str, concurrency: int, batch: int) -> AsyncIterator[Fetch]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=TIMEOUT) as http:
        path = report_path()

        async def fetch(ids: Sequence[int | str]) -> list[Any]:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(batch_ids: list[int | str]) -> list[Any]:
                async with semaphore:
                    response = await http.post(path, json={"data": {"gsm_track_ids": batch_ids}})
                    response.raise_for_status()
                    rows: list[Any] = json.loads(response.content)["response"]["data"]
                    return rows

            answers = await asyncio.gather(*(one(b) for b in _batches(ids, batch)))
            return [row for rows in answers for row in rows]

        yield fetch


@asynccontextmanager
async def _aiohttp_session(url: str, concurrency: int) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        yield session


_JSON_HEADERS: Final = {"Content-Type": "application/json"}


@asynccontextmanager
async def aiohttp_orjson(url: str, concurrency: int, batch: int) -> AsyncIterator[Fetch]:
    async with _aiohttp_session(url, concurrency) as session:
        path = report_path()

        async def fetch(ids: Sequence[int | str]) -> list[Any]:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(batch_ids: list[int | str]) -> list[Any]:
                body = orjson.dumps({"data": {"gsm_track_ids": batch_ids}})
                async with (
                    semaphore,
                    session.post(path, data=body, headers=_JSON_HEADERS) as response,
                ):
                    response.raise_for_status()
                    rows: list[Any] = orjson.loads(await response.read())["response"]["data"]
                    return rows

            answers = await asyncio.gather(*(one(b) for b in _batches(ids, batch)))
            return [row for rows in answers for row in rows]

        yield fetch


@asynccontextmanager
async def aiohttp_msgspec(url: str, concurrency: int, batch: int) -> AsyncIterator[Fetch]:
    async with _aiohttp_session(url, concurrency) as session:
        path = report_path()

        async def fetch(ids: Sequence[int | str]) -> list[Any]:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(batch_ids: list[int | str]) -> list[DetailedReport]:
                body = msgspec.json.encode({"data": {"gsm_track_ids": batch_ids}})
                async with (
                    semaphore,
                    session.post(path, data=body, headers=_JSON_HEADERS) as response,
                ):
                    response.raise_for_status()
                    return ENVELOPE_DECODER.decode(await response.read()).response.data

            answers = await asyncio.gather(*(one(b) for b in _batches(ids, batch)))
            return [row for rows in answers for row in rows]

        yield fetch


METHODS: Final[tuple[Method[Opener], ...]] = (
    *(organik_method(variant) for variant in ORGANIK_VARIANTS),
    Method("httpx_loop", "hand-written httpx loop (gather + semaphore, json.loads)", httpx_loop),
    Method("aiohttp_orjson", "hand-written aiohttp + orjson loop", aiohttp_orjson),
    Method(
        "aiohttp_msgspec",
        "hand-written aiohttp + msgspec Structs (the limit for this design)",
        aiohttp_msgspec,
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


async def _measure(
    method: Method[Opener],
    url: str,
    ids: Sequence[int | str],
    concurrency: int,
    batch: int,
    server_pid: int,
) -> tuple[CpuUsage, list[Any]]:
    async with method.open(url, concurrency, batch) as fetch:
        await fetch(ids[: concurrency * batch])  # untimed: opens the connections
        gc.collect()
        meter = CpuMeter(server_pid)
        rows = await fetch(ids)
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
                    _measure(method, server.url, dataset_ids, c, batch, server.pid)
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


# --- tables -----------------------------------------------------------------------------


def issue_table(points: Sequence[Point]) -> str:
    """The issue's table: one line per method, rows/s and CPU µs/row at each C."""
    levels = sorted({p.concurrency for p in points})
    headers = [""]
    for c in levels:
        headers += [f"C={c} rows/s", "client CPU µs/row"]
    by = {(p.method, p.concurrency): p for p in points}
    lines = []
    for method in dict.fromkeys(p.method for p in points):
        cells = [next(p.name for p in points if p.method == method)]
        for c in levels:
            p = by[(method, c)]
            if p.failure or not p.walls:
                cells += ["failed", "-"]
                continue
            cells += [f"{p.rows_per_second / 1e3:,.0f} k", f"{p.client_us_per_row:.1f}"]
        lines.append(cells)
    return markdown_table(headers, lines)


def detail_table(points: Sequence[Point]) -> str:
    headers = [
        "method", "C", "rows/s", "±", "client µs/row", "±", "timed calls",
        "client CPU", "server CPU", "others' CPU",
    ]  # fmt: skip
    lines = [
        [
            p.name,
            str(p.concurrency),
            f"{p.rows_per_second:,.0f}",
            f"{spread(p.rows_per_second_each):.0%}",
            f"{p.client_us_per_row:.2f}",
            f"{spread(p.client_us_per_row_each):.0%}",
            str(len(p.walls)),
            percent(p.share("client")),
            percent(p.share("server")),
            others_cell(p.share("others")),
        ]
        for p in points
        if p.walls
    ]
    return markdown_table(headers, lines)


HTTPX_PATH_KEYS: Final = ("organik_httpx", "organik")
"""The organik_async line judged on the targets for the httpx transport: the first of
these in the table (``http_backend="httpx"``; the defaults, if that line was left out and
aiohttp is not installed). Every other organik_async line is judged on the targets for
the fastest transport."""


def ratio_lines(points: Sequence[Point]) -> list[str]:
    """The issue's end-to-end targets, as ratios of medians from this one run."""
    by = {(p.method, p.concurrency): p for p in points if p.walls and not p.failure}
    lines = []
    for c in sorted({p.concurrency for p in points}):
        limit, orj, loop = (
            by.get(("aiohttp_msgspec", c)),
            by.get(("aiohttp_orjson", c)),
            by.get(("httpx_loop", c)),
        )
        httpx_key = next((key for key in HTTPX_PATH_KEYS if (key, c) in by), None)
        for variant in ORGANIK_VARIANTS:
            ours = by.get((variant.key, c))
            if ours is None or limit is None:
                continue
            cpu = ours.client_us_per_row / limit.client_us_per_row
            if variant.key == httpx_key and loop:
                speed = ours.rows_per_second / loop.rows_per_second
                lines.append(
                    f"- C={c}, {ours.name} (httpx transport): rows/s {speed:.2f} x the "
                    f"hand-written httpx loop (target >= 3); client CPU per row {cpu:.2f} x "
                    "the limit (target <= 2.5)"
                )
            elif variant.key != httpx_key and orj:
                speed = ours.rows_per_second / orj.rows_per_second
                lines.append(
                    f"- C={c}, {ours.name} (fastest transport): client CPU per row {cpu:.2f} x "
                    f"the aiohttp + msgspec loop (target <= 1.5); rows/s {speed:.2f} x the "
                    "aiohttp + orjson loop (target >= 1)"
                )
    return lines


def e2e_markdown(points: Sequence[Point], *, rows: int, batch: int, rounds: int) -> str:
    title = (
        f"### End to end over TCP: {rows:,} rows by GSM track ID, {batch} per request\n\n"
        "The simulator in its own process (uvicorn) pinned to CPU 1, the client to CPU 0. "
        f"Rows/s: median of {rounds} timed calls; client CPU µs/row: median of the same "
        "calls' CPU time (this process) per row; methods take turns, round after round; "
        "±: half the range, relative to the median. Every timed call received every row."
    )
    text = "\n\n".join(
        [title, issue_table(points), "Ratios (issue 11's targets):", "\n".join(ratio_lines(points))]
    )
    text += "\n\nEvery timed call:\n\n" + detail_table(points)
    if any(p.share("others") > DISTURBED for p in points):
        text += "\n\n" + DISTURBED_NOTE
    for p in points:
        if p.failure:
            text += f"\n\n{p.name}, C={p.concurrency} failed: {p.failure}"
    return text
