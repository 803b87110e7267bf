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
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from organik_async import BatchSizes, OrganikClient, OrganikError, Progress
from organik_async.testing import DEMO_API_KEY, Dataset

from ._common import CpuMeter, CpuUsage, Log, SimulatorServer, in_turns, percent

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
    default_pool_size: int = DEFAULT_POOL_SIZE
    """The client's ``pool_size`` when this ran: the tables mark those points "default"."""

    def batches(self, concurrency: int) -> int:
        return max(self.min_batches, self.batches_per_slot * concurrency)

    def ids_needed(self) -> int:
        return max(self.batches(c) for c in self.levels) * self.batch_size

    def cases(self) -> list[Case]:
        cases = [Case(c, self.default_pool_size, self.batches(c)) for c in self.levels]
        cases += [Case(c, c, self.batches(c)) for c in self.compare_levels if c in self.levels]
        return cases


@dataclass(frozen=True, slots=True)
class Case:
    """One point: ``max_concurrency``, ``pool_size`` and the number of batches."""

    concurrency: int
    pool_size: int
    batches: int


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

    def cpu_share(self, who: str) -> float:
        """Average share of one core over the timed repeats."""
        wall = sum(u.wall for u in self.usages)
        return sum(getattr(u, who) for u in self.usages) / wall if wall else 0.0


def scenarios(levels: tuple[int, ...], latency_ms: float, *, quick: bool) -> list[Scenario]:
    """The latency-bound table and the CPU-bound table."""
    compare = tuple(c for c in COMPARE_LEVELS if c in levels)
    latency = Scenario(
        f"latency-bound ({latency_ms:g} ms)",
        latency=latency_ms / 1000,
        batch_size=20,
        batches_per_slot=8 if quick else 16,
        min_batches=16,
        levels=levels,
        compare_levels=compare,
    )
    cpu = Scenario(
        "CPU-bound (no latency)",
        latency=0.0,
        batch_size=250,
        batches_per_slot=4,
        min_batches=128 if quick else 512,
        levels=levels,
        compare_levels=compare,
        repeat_scale=3,
    )
    return [latency, cpu]


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

    Read from private attributes on purpose: the pools are what the ``pool_size``
    comparison is about, and no public API counts them (nor should one). A client
    whose internals have moved shows "?" in the table rather than stopping the part.
    """
    requester = getattr(client, "_requester", None)
    for owner in (requester, getattr(requester, "sender", None)):
        pools = getattr(getattr(owner, "pools", None), "pools", None)
        if isinstance(pools, tuple):
            return len(pools)
    return 0


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
) -> tuple[list[Point], dict[str, Any]]:
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
    return list(points.values()), server.stats


def run_fanout(
    scenarios: Sequence[Scenario], *, repeat: int, pin: bool, backend: str, log: Log
) -> dict[str, Any]:
    """Every scenario; the figures its results file keeps (the server's own counts too:
    requests and rows it served, warm-ups included)."""
    tables = []
    for scenario in scenarios:
        scaled = repeat * scenario.repeat_scale
        points, stats = run_scenario(scenario, repeat=scaled, pin=pin, backend=backend, log=log)
        tables.append(
            {
                "scenario": scenario,
                "repeat": scaled,
                "points": points,
                "server_requests": stats.get("requests"),
                "server_rows": stats.get("rows_served"),
            }
        )
    return {"scenarios": tables}


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
