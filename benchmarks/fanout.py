"""Fan-out scaling: rows/s of a bulk call as ``max_concurrency`` grows, over real TCP.

Why gsm_track_ids: each one is exactly one row, so a batch of ``n`` IDs is a
request that returns ``n`` rows, and every point does a known amount of work.
Two scenarios:

* **latency-bound** (the server waits 100 ms per request, 20 rows per
  request): the ideal wall time is ``ceil(batches / C) x latency``; the ratio
  to it shows what the engine and httpx add on top of the network wait.
* **CPU-bound** (no added latency, 250 rows per request, the client's
  default batch size): rows/s is what one client core can decode and move; a
  design whose per-request cost grows with the requests in flight (one big
  httpx pool, encode/httpx#3215) shows up as a drop at high C.

Each point also runs, for comparison, with ``pool_size=C``: a single httpx
pool holding every connection, which is what the small-pools design
(``organik_async._pool``) exists to avoid. The client is on
``http_backend="httpx"`` throughout: the pools are httpx's (the aiohttp path
has one connector and no ``pool_size``; the e2e part measures it).

:func:`simulator_throughput` measures the server alone with a raw httpx client
that reads bytes without decoding them (the same loop as ``python -m
organik_async.testing bench``, written here on httpx alone), to show the
simulator is not what limits the client's figures.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
import httpx

from organik_async import BatchSizes, OrganikClient, OrganikError, Progress
from organik_async.testing import DEMO_API_KEY, Dataset

from ._common import (
    DISTURBED,
    DISTURBED_NOTE,
    CpuMeter,
    CpuUsage,
    Log,
    SimulatorServer,
    in_turns,
    markdown_table,
    median,
    others_cell,
    percent,
    report_path,
)

DEFAULT_POOL_SIZE: int = inspect.signature(OrganikClient).parameters["pool_size"].default
"""The client's own default, read from it so the tables follow the package."""
DEFAULT_LEVELS = (1, 8, 32, 64, 128)
COMPARE_LEVELS = (32, 64, 128)
"""Levels also run with ``pool_size=C`` (one big httpx pool), for comparison."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One fan-out table: the server's latency, the batch size, how many batches."""

    name: str
    latency: float
    batch_size: int
    batches_per_slot: int
    """Batches per point are ``batches_per_slot x C`` (at least ``min_batches``),
    so every worker does the same number of requests at every C."""
    min_batches: int
    levels: tuple[int, ...] = DEFAULT_LEVELS
    compare_levels: tuple[int, ...] = COMPARE_LEVELS
    repeat_scale: int = 1
    """Timed calls per case, as a multiple of ``--repeat``: short calls are noisier."""

    def batches(self, concurrency: int) -> int:
        return max(self.min_batches, self.batches_per_slot * concurrency)

    def ids_needed(self) -> int:
        return max(self.batches(c) for c in self.levels) * self.batch_size

    def cases(self) -> list[Case]:
        cases = [Case(c, DEFAULT_POOL_SIZE, self.batches(c)) for c in self.levels]
        cases += [Case(c, c, self.batches(c)) for c in self.compare_levels if c in self.levels]
        return cases


@dataclass(frozen=True, slots=True)
class Case:
    """One point: ``max_concurrency``, ``pool_size`` and the number of batches."""

    concurrency: int
    pool_size: int
    batches: int

    @property
    def default_pools(self) -> bool:
        return self.pool_size == DEFAULT_POOL_SIZE

    @property
    def one_big_pool(self) -> bool:
        return self.pool_size == self.concurrency and not self.default_pools


@dataclass(slots=True)
class Point:
    """What one case measured, over its timed repeats."""

    case: Case
    rows_per_call: int = 0
    pools: int = 0
    walls: list[float] = field(default_factory=list)
    usages: list[CpuUsage] = field(default_factory=list)
    retries: int = 0
    """Requests retried during the timed calls (the client's default policy)."""
    failure: str = ""
    """Why a timed call failed even after retries (the point is then incomplete)."""

    @property
    def wall(self) -> float:
        return median(self.walls) if self.walls else float("nan")

    @property
    def spread(self) -> float:
        """Half the range of the timed calls' walls, relative to the median."""
        if len(self.walls) < 2:
            return 0.0
        return (max(self.walls) - min(self.walls)) / 2 / self.wall

    @property
    def rows_per_second(self) -> float:
        return self.rows_per_call / self.wall

    @property
    def requests_per_second(self) -> float:
        return self.case.batches / self.wall

    @property
    def client_us_per_row(self) -> float:
        """Client CPU per row: unlike wall time, not inflated by moments when the
        host does not run this VM's CPU, so it tells a real cost from noise."""
        rows = self.rows_per_call * len(self.usages)
        return sum(u.client for u in self.usages) / rows * 1e6 if rows else float("nan")

    def cpu_share(self, who: str) -> float:
        """Average share of one core over the timed repeats."""
        wall = sum(u.wall for u in self.usages)
        return sum(getattr(u, who) for u in self.usages) / wall if wall else 0.0


# --- measuring --------------------------------------------------------------------------


class _Retries:
    """``on_progress`` callback keeping the latest snapshot's retry count."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, progress: Progress) -> None:
        self.count = progress.retries


async def _timed_call(client: OrganikClient, ids: Sequence[int | str]) -> tuple[int, int]:
    """One bulk call, rows counted as they stream (no dedupe: nothing is kept).

    Returns the rows and the retries, which the table shows: a retry waits a
    backoff, so a point with retries is slower for a reason of its own.
    """
    count = 0
    retries = _Retries()
    async with client.iter_detailed_report(
        gsm_track_ids=ids, dedupe=False, on_progress=retries
    ) as rows:
        async for _ in rows:
            count += 1
    return count, retries.count


async def _measure_once(
    case: Case,
    scenario: Scenario,
    ids: Sequence[int | str],
    server_pid: int,
    url: str,
    point: Point,
) -> None:
    """Open a client (kept open, as an app would), warm its connections, time one call."""
    async with OrganikClient(
        DEMO_API_KEY,
        base_url=url,
        max_concurrency=case.concurrency,
        max_connections=max(case.concurrency, 128),
        pool_size=case.pool_size,
        batch_sizes=BatchSizes(gsm_track_ids=scenario.batch_size),
        http_backend="httpx",
    ) as client:
        try:
            # Untimed: opens the C connections, so the timed call measures
            # fan-out, not TCP set-up.
            await _timed_call(client, ids[: case.concurrency * scenario.batch_size])
            wanted = ids[: case.batches * scenario.batch_size]
            await _timed_repeat(client, wanted, point, server_pid)
        except OrganikError as exc:
            point.failure = f"{type(exc).__name__}: {exc}"
        point.pools = max(point.pools, _pools_opened(client))


def _pools_opened(client: OrganikClient) -> int:
    """How many httpx pools the client has opened, or 0 where its internals do not say.

    Read from a private attribute on purpose: the pools are what the ``pool_size``
    comparison is about, and no public API counts them (nor should one). A client
    whose internals have moved shows "?" in the table rather than stopping the part.
    """
    pool_set = getattr(getattr(client, "_requester", None), "pools", None)
    pools = getattr(pool_set, "pools", None)
    return len(pools) if isinstance(pools, tuple) else 0


async def _timed_repeat(
    client: OrganikClient, ids: Sequence[int | str], point: Point, server_pid: int
) -> None:
    meter = CpuMeter(server_pid)
    rows, retries = await _timed_call(client, ids)
    usage = meter.stop()
    if rows != len(ids):
        raise RuntimeError(f"expected {len(ids)} rows, got {rows} ({point.case})")
    point.walls.append(usage.wall)
    point.usages.append(usage)
    point.rows_per_call = rows
    point.retries += retries


def run_scenario(
    scenario: Scenario, *, repeat: int, pin: bool, backend: str, log: Log
) -> tuple[list[Point], SimulatorServer]:
    """Start a server with the scenario's latency, measure every case, stop it.

    Repeats are interleaved (every case once, then again in reverse order...)
    rather than back to back, so that a slow phase of the host, which a VM
    cannot see, spreads over all the cases instead of skewing one.
    """
    rows = scenario.ids_needed()
    ids = list(Dataset.generate(rows).gsm_track_ids())
    cases = scenario.cases()
    points = {case: Point(case) for case in cases}
    with SimulatorServer(rows, latency=scenario.latency, pin=pin) as server:
        log(f"{scenario.name}: server up in {server.startup_seconds:.1f}s at {server.url}")
        for _, case in in_turns(cases, repeat):
            point = points[case]
            if point.failure:
                continue
            anyio.run(
                _measure_once, case, scenario, ids, server.pid, server.url, point,
                backend=backend,
            )  # fmt: skip
            _log_point(log, point)
    return list(points.values()), server


def _log_point(log: Log, point: Point) -> None:
    log(
        f"  C={point.case.concurrency:<4} pool_size={point.case.pool_size:<4} "
        f"{point.rows_per_call / point.walls[-1] if point.walls else 0:>9,.0f} rows/s  walls "
        + "/".join(f"{w:.2f}" for w in point.walls)
        + f"  client {percent(point.cpu_share('client'))} "
        f"server {percent(point.cpu_share('server'))} "
        f"others {percent(point.cpu_share('others'))}"
        + (f"  retries {point.retries}" if point.retries else "")
        + (f"  FAILED: {point.failure}" if point.failure else "")
    )


# --- the simulator alone ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawShape:
    """A request shape for the raw simulator measurement."""

    kind: str
    batch_size: int
    requests: int | None
    """``None``: every ID of that kind in the dataset."""
    passes: int = 1
    """Times the batches are fetched: a pass over a small dataset takes too little
    time for ``/proc``'s 10 ms CPU ticks to measure the server well."""


@dataclass(frozen=True, slots=True)
class RawResult:
    shape: RawShape
    requests: int
    rows: int
    body_bytes: int
    usage: CpuUsage


ROW_MARKER: Final = b'"gsm":'
"""Each JSON row names its ``gsm`` once: rows are counted without decoding."""


async def _fetch_counted(
    url: str, batches: list[list[int | str]], shape: RawShape, concurrency: int, server_pid: int
) -> RawResult:
    """POST every batch once, ``concurrency`` in flight on one httpx pool, and count the
    rows in the answers' bytes, never decoded, so the client costs little next to the
    server. One untimed request opens a connection first."""
    path = report_path()
    queue = iter(batches)
    rows = requests = body_bytes = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:

        async def post(batch: list[int | str]) -> bytes:
            response = await http.post(path, json={"data": {shape.kind: batch}})
            response.raise_for_status()
            return response.content

        async def worker() -> None:
            nonlocal rows, requests, body_bytes
            for batch in queue:
                content = await post(batch)
                rows += content.count(ROW_MARKER)
                requests += 1
                body_bytes += len(content)

        if batches:
            await post(batches[0])  # opens a connection
        meter = CpuMeter(server_pid)
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        usage = meter.stop()
    return RawResult(shape, requests, rows, body_bytes, usage)


def _shape_batches(dataset: Dataset, shape: RawShape) -> list[list[int | str]]:
    ids: list[int | str] = (
        list(dataset.transaction_ids)
        if shape.kind == "transaction_ids"
        else list(dataset.gsm_track_ids())
    )
    batches = [ids[i : i + shape.batch_size] for i in range(0, len(ids), shape.batch_size)]
    batches = batches if shape.requests is None else batches[: shape.requests]
    return batches * shape.passes


def simulator_throughput(
    rows: int, shapes: Sequence[RawShape], *, concurrency: int, pin: bool, log: Log
) -> list[RawResult]:
    """The server's own rows/s and CPU per row, for each request shape."""
    dataset = Dataset.generate(rows)
    results: list[RawResult] = []
    with SimulatorServer(rows, pin=pin) as server:
        log(f"simulator: server up in {server.startup_seconds:.1f}s at {server.url}")
        for shape in shapes:
            batches = _shape_batches(dataset, shape)
            result = anyio.run(_fetch_counted, server.url, batches, shape, concurrency, server.pid)
            results.append(result)
            got, usage = result.rows, result.usage
            log(
                f"  {shape.kind} x{shape.batch_size}: {got / usage.wall:,.0f} rows/s, "
                f"server {percent(usage.share(usage.server))}, "
                f"others {percent(usage.share(usage.others))}"
            )
    return results


# --- tables -----------------------------------------------------------------------------


def _pools_label(point: Point) -> str:
    label = f"{point.pools or '?'} x {point.case.pool_size}"
    if point.case.default_pools:
        return label + " (default)"
    return label + " (one big pool)" if point.case.one_big_pool else label


def fanout_table(scenario: Scenario, points: Sequence[Point], repeat: int) -> str:
    """One scenario's table; ideal and ratio columns only when there is latency."""
    headers = ["C", "httpx pools", "requests", "rows", "wall s", "±", "rows/s", "req/s"]
    if scenario.latency > 0:
        headers += ["ideal s", "wall/ideal"]
    headers += ["retries", "client CPU", "client µs/row", "server CPU", "others' CPU"]
    lines = []
    for point in points:
        case = point.case
        cells = [
            str(case.concurrency),
            _pools_label(point),
            f"{case.batches:,}",
            f"{point.rows_per_call:,}",
            f"{point.wall:.2f}",
            f"{point.spread:.0%}",
            f"{point.rows_per_second:,.0f}",
            f"{point.requests_per_second:,.0f}",
        ]
        if scenario.latency > 0:
            ideal = math.ceil(case.batches / case.concurrency) * scenario.latency
            cells += [f"{ideal:.2f}", f"{point.wall / ideal:.2f}"]
        cells.append(f"{point.retries:,}" + (" ‡" if point.failure else ""))
        cells += [
            percent(point.cpu_share("client")),
            f"{point.client_us_per_row:.2f}",
            percent(point.cpu_share("server")),
            others_cell(point.cpu_share("others")),
        ]
        lines.append(cells)
    title = (
        f"### Fan-out, {scenario.name}: server latency {scenario.latency * 1000:g} ms, "
        f"{scenario.batch_size} gsm_track_ids (= rows) per request\n\n"
        f"wall s: median of {repeat} timed calls, each on a freshly opened client after an "
        "untimed warm-up call that opens its connections; the cases take turns, round after "
        "round; ±: half the range of the walls, relative to the median; retries: requests "
        "retried in them (client defaults: up to 3, with backoff); CPU columns: share of "
        "one core during the timed calls (others' CPU: every other process on the machine)."
    )
    table = title + "\n\n" + markdown_table(headers, lines)
    if any(p.cpu_share("others") > DISTURBED for p in points):
        table += "\n\n" + DISTURBED_NOTE
    for point in points:
        if point.failure:
            table += (
                f"\n\n‡ C={point.case.concurrency}, pool_size={point.case.pool_size}: a call "
                f"failed after its retries, the figures are from the calls before it: "
                f"{point.failure}"
            )
    return table


def simulator_table(results: Sequence[RawResult], rows: int, concurrency: int) -> str:
    headers = [
        "request shape", "requests", "rows", "MB", "wall s", "rows/s", "req/s",
        "server CPU", "rows per server CPU-s", "req per server CPU-s", "others' CPU",
    ]  # fmt: skip
    lines = []
    for result in results:
        usage = result.usage
        server = max(usage.server, 1e-9)
        lines.append(
            [
                f"{result.shape.kind} x {result.shape.batch_size}",
                f"{result.requests:,}",
                f"{result.rows:,}",
                f"{result.body_bytes / 1e6:,.0f}",
                f"{usage.wall:.2f}",
                f"{result.rows / usage.wall:,.0f}",
                f"{result.requests / usage.wall:,.0f}",
                percent(usage.share(usage.server)),
                f"{result.rows / server:,.0f}",
                f"{result.requests / server:,.0f}",
                others_cell(usage.share(usage.others)),
            ]
        )
    title = (
        f"### The simulator alone over TCP ({rows:,}-row dataset, no added latency)\n\n"
        f"A raw httpx client ({concurrency} requests in flight on one pool) reads the bytes "
        "and counts rows without decoding them. *rows per server CPU-s* is what the "
        "server process can serve on its one core."
    )
    table = title + "\n\n" + markdown_table(headers, lines)
    if any(r.usage.share(r.usage.others) > DISTURBED for r in results):
        table += "\n\n" + DISTURBED_NOTE
    return table
