"""Where a one-ID call's CPU goes: the HTTP library, our request path, our engine.

Three layers of the same one-row request, taking turns, client CPU per call
(the simulator in its own process pinned to CPU 1, this client to CPU 0, so
the server's CPU is not counted):

* ``bare``: an ``aiohttp.ClientSession.post`` of the same body, bytes read;
* ``fetch``: the client's request path alone (``Requester.fetch``: throttles,
  send, read, decode, errors), read through a private attribute on purpose:
  no public API stops below the engine;
* ``call``: ``detailed_report(gsm_track_ids=[one_id])``, the whole call.

``call - fetch`` is the engine's cost per call; ``fetch - bare`` the request
path's (decoding one row included). Run alone, for one backend, it prints the
rounds::

    python -m benchmarks.percall [--calls 1000] [--backend auto|httpx]

As the suite's part (``python -m benchmarks percall``) it measures both backends
and writes ``benchmarks/results/percall.json``, whose table
``benchmarks/PROFILE.md`` reasons from.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import aiohttp
import anyio

from organik_async import HttpBackend, OrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset

from ._common import CLIENT_CPU, CpuMeter, Log, SimulatorServer, can_pin, percent, pin_to

ROWS: Final = 2_000
SEED: Final = 1
ROUNDS: Final = 3
DEFAULT_CALLS: Final = 1_000
BACKENDS: Final[tuple[HttpBackend, ...]] = ("auto", "httpx")


async def measure(url: str, calls: int, backend: HttpBackend) -> dict[str, list[float]]:
    ids = list(Dataset.generate(ROWS, seed=SEED).gsm_track_ids())[:1_000]
    timings: dict[str, list[float]] = {"bare": [], "fetch": [], "call": []}
    client = OrganikClient(DEMO_API_KEY, base_url=url, http_backend=backend)
    async with client, aiohttp.ClientSession() as session:
        requester, settings = client._requester, client._settings
        route = requester.route("json", "json")

        async def bare(i: int) -> None:
            body = b'{"data":{"gsm_track_ids":[%d]}}' % int(ids[i % len(ids)])
            async with session.post(route.text, data=body, headers=route.media) as answer:
                await answer.read()

        async def fetch(i: int) -> None:
            await requester.fetch({"gsm_track_ids": [ids[i % len(ids)]]}, settings)

        async def call(i: int) -> None:
            await client.detailed_report(gsm_track_ids=[ids[i % len(ids)]])

        layers: dict[str, Callable[[int], Awaitable[None]]] = {
            "bare": bare,
            "fetch": fetch,
            "call": call,
        }
        for _ in range(ROUNDS):  # the layers take turns
            for name, layer in layers.items():
                for i in range(50):  # warm-up
                    await layer(i)
                started = time.process_time()
                for i in range(calls):
                    await layer(i)
                timings[name].append(1e6 * (time.process_time() - started) / calls)
    return timings


def run_percall(
    calls: int, backends: Sequence[HttpBackend], *, pin: bool, log: Log
) -> dict[str, Any]:
    """Every backend's layers against one server; the figures its results file keeps
    (the others' share of a core over each backend's rounds too)."""
    measured = []
    with SimulatorServer(ROWS, seed=SEED, pin=pin) as server:
        log(f"percall: server up in {server.startup_seconds:.1f}s at {server.url}")
        for backend in backends:
            meter = CpuMeter(server.pid)
            layers = anyio.run(measure, server.url, calls, backend)
            usage = meter.stop()
            others = usage.share(usage.others)
            log(f"  http_backend={backend!r}: " + _shown(layers) + f"; others {percent(others)}")
            measured.append({"backend": backend, "layers": layers, "others_share": others})
    return {"calls": calls, "rounds": ROUNDS, "backends": measured}


def _shown(layers: dict[str, list[float]]) -> str:
    return "; ".join(
        f"{name} " + ", ".join(f"{v:,.0f}" for v in values) for name, values in layers.items()
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.percall", description=__doc__)
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    args = parser.parse_args()
    backend: HttpBackend = args.backend
    pin = can_pin()  # as the other parts: the server on one CPU, this client on the other
    if pin:
        pin_to(CLIENT_CPU)
    with SimulatorServer(ROWS, seed=SEED, pin=pin) as server:
        timings = anyio.run(measure, server.url, args.calls, backend)
    print(f"client CPU µs per one-ID call, http_backend={backend!r}, {ROUNDS} rounds:")
    for name, values in timings.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  {name:6s} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
