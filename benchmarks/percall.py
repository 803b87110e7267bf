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
path's (decoding one row included). ``benchmarks/PROFILE.md`` quotes it::

    python -m benchmarks.percall [--calls 1000] [--backend auto|httpx]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import anyio

from organik_async import HttpBackend, OrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset

from ._common import CLIENT_CPU, SERVER_CPU, can_pin

ROWS = 2_000
SEED = 1


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
        for _ in range(3):  # rounds; the layers take turns
            for name, layer in layers.items():
                for i in range(50):  # warm-up
                    await layer(i)
                started = time.process_time()
                for i in range(calls):
                    await layer(i)
                timings[name].append(1e6 * (time.process_time() - started) / calls)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.percall", description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--backend", choices=["auto", "httpx"], default="auto")
    args = parser.parse_args()
    backend: HttpBackend = args.backend
    server = subprocess.Popen(
        [sys.executable, "-m", "organik_async.testing", "serve", "--port", "0",
         "--rows", str(ROWS), "--seed", str(SEED)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        if can_pin():  # as the other parts: the server on one CPU, this client on the other
            os.sched_setaffinity(server.pid, {SERVER_CPU})
            os.sched_setaffinity(0, {CLIENT_CPU})
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        timings = anyio.run(measure, url, args.calls, backend)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"client CPU µs per one-ID call, http_backend={backend!r}, 3 rounds:")
    for name, values in timings.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  {name:6s} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
