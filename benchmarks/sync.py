"""What the blocking client adds per call to the async client it wraps.

The same one-ID ``detailed_report`` against the simulator (its own process, pinned to
CPU 1; this process to CPU 0), sequential calls, the two clients taking turns for 3
rounds: ``await client.detailed_report(...)`` on an ``OrganikClient`` in this thread's
event loop, and ``client.detailed_report(...)`` on a ``SyncOrganikClient``, whose loop
runs in a background thread (the hop to that thread and back is the difference).
Reported per call: wall time, and this process's CPU (both threads)::

    python -m benchmarks.sync [--calls 1000] [--backend auto|httpx] [--quick]

``--hop`` measures the hop alone, without a network: a blocking call of a coroutine that
does nothing, through the client's loop thread (the same path a report call takes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable

import anyio

from organik_async import HttpBackend, OrganikClient, SyncOrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset

from ._common import CLIENT_CPU, SERVER_CPU, can_pin

ROWS = 2_000
SEED = 1
WARM_UP = 50

Timing = tuple[float, float]
"""Wall and CPU microseconds per call."""


def ids() -> list[int | str]:
    return list(Dataset.generate(ROWS, seed=SEED).gsm_track_ids())[:1_000]


def timed(calls: int, run: Callable[[], None]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return (
        1e6 * (time.perf_counter() - wall) / calls,
        1e6 * (time.process_time() - cpu) / calls,
    )


def async_round(url: str, calls: int, backend: HttpBackend) -> Timing:
    track = ids()

    async def measure() -> Timing:
        async with OrganikClient(DEMO_API_KEY, base_url=url, http_backend=backend) as client:
            for i in range(WARM_UP):
                await client.detailed_report(gsm_track_ids=[track[i % len(track)]])
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(calls):
                await client.detailed_report(gsm_track_ids=[track[i % len(track)]])
            return (
                1e6 * (time.perf_counter() - wall) / calls,
                1e6 * (time.process_time() - cpu) / calls,
            )

    return anyio.run(measure)


def sync_round(url: str, calls: int, backend: HttpBackend) -> Timing:
    track = ids()
    with SyncOrganikClient(DEMO_API_KEY, base_url=url, http_backend=backend) as client:
        for i in range(WARM_UP):
            client.detailed_report(gsm_track_ids=[track[i % len(track)]])

        def run() -> None:
            for i in range(calls):
                client.detailed_report(gsm_track_ids=[track[i % len(track)]])

        return timed(calls, run)


def hop(calls: int) -> None:
    """Wall and CPU microseconds of one round trip to the client's loop thread and back."""

    async def nothing() -> None:
        return None

    with SyncOrganikClient(DEMO_API_KEY, base_url="http://127.0.0.1:9") as client:
        run = client._shared.loop.run  # the path every blocking call takes
        for _ in range(WARM_UP):
            run(nothing)

        def hops() -> None:
            for _ in range(calls):
                run(nothing)

        for _ in range(3):
            wall, cpu = timed(calls, hops)
            print(f"  hop to the loop thread and back: {wall:,.0f} µs wall, {cpu:,.0f} µs CPU")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sync", description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--backend", choices=["auto", "httpx"], default="auto")
    parser.add_argument("--quick", action="store_true", help="200 calls per round")
    parser.add_argument("--hop", action="store_true", help="the thread hop alone")
    args = parser.parse_args()
    calls = 200 if args.quick else args.calls
    if args.hop:
        if can_pin():
            os.sched_setaffinity(0, {CLIENT_CPU})
        hop(calls)
        return 0
    backend: HttpBackend = args.backend
    server = subprocess.Popen(
        [sys.executable, "-m", "organik_async.testing", "serve", "--port", "0",
         "--rows", str(ROWS), "--seed", str(SEED)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    timings: dict[str, list[Timing]] = {"async": [], "sync": []}
    try:
        if can_pin():
            os.sched_setaffinity(server.pid, {SERVER_CPU})
            os.sched_setaffinity(0, {CLIENT_CPU})
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        for _ in range(3):  # rounds; the clients take turns
            timings["async"].append(async_round(url, calls, backend))
            timings["sync"].append(sync_round(url, calls, backend))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"µs per one-ID call, http_backend={backend!r}, {calls} calls x 3 rounds (wall / CPU):")
    for name, values in timings.items():
        shown = ", ".join(f"{wall:,.0f} / {cpu:,.0f}" for wall, cpu in values)
        print(f"  {name:6s} {shown}")
    best = {name: (min(w for w, _ in v), min(c for _, c in v)) for name, v in timings.items()}
    print(
        f"  sync - async (best rounds): wall {best['sync'][0] - best['async'][0]:+,.0f} µs, "
        f"CPU {best['sync'][1] - best['async'][1]:+,.0f} µs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
