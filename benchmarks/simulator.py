"""The simulator alone: how many rows its process serves, so it is never what limits a figure.

``python -m benchmarks simulator``. A server process (pinned to its own CPU) and, in
this process, a raw httpx client that reads the answers' bytes and counts the rows
in them without decoding them, for a few request shapes. The loop is
``organik_async.testing``'s own (the ``python -m organik_async.testing bench``
command runs the same one); here it is timed with `CpuMeter`, so the results
say the server's CPU time per row as well as its rows/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from organik_async.testing import Dataset

# Private on purpose: the one implementation of the raw read-and-count loop, shared with
# the simulator's own `bench` command; no public API exposes it.
from organik_async.testing._bench import fetch_all

from ._common import CpuMeter, CpuUsage, Log, SimulatorServer, percent


@dataclass(frozen=True, slots=True)
class RawShape:
    """A request shape: which IDs, how many per request, how many requests."""

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


def shapes(quick: bool) -> list[RawShape]:
    return [
        RawShape("gsm_track_ids", 20, 500 if quick else 3_000),
        RawShape("gsm_track_ids", 250, 128 if quick else 1_000),
        RawShape("gsm_track_ids", 500, 64 if quick else 500),
        RawShape("transaction_ids", 20, None, passes=1 if quick else 5),
    ]


def _batches(dataset: Dataset, shape: RawShape) -> list[list[int | str]]:
    ids: list[int | str] = (
        list(dataset.transaction_ids)
        if shape.kind == "transaction_ids"
        else list(dataset.gsm_track_ids())
    )
    batches = [ids[i : i + shape.batch_size] for i in range(0, len(ids), shape.batch_size)]
    batches = batches if shape.requests is None else batches[: shape.requests]
    return batches * shape.passes


async def _fetch(
    url: str, batches: list[list[int | str]], shape: RawShape, concurrency: int, server_pid: int
) -> RawResult:
    fetched, usage = await fetch_all(
        url,
        batches,
        kind=shape.kind,
        concurrency=concurrency,
        meter=lambda: CpuMeter(server_pid).stop,
    )
    return RawResult(shape, fetched.requests, fetched.rows, fetched.body_bytes, usage)


def run_simulator(
    rows: int, raw_shapes: Sequence[RawShape], *, concurrency: int, pin: bool, log: Log
) -> list[RawResult]:
    """The server's rows/s and CPU per row, for each request shape."""
    dataset = Dataset.generate(rows)
    results: list[RawResult] = []
    with SimulatorServer(rows, pin=pin) as server:
        log(f"simulator: server up in {server.startup_seconds:.1f}s at {server.url}")
        for shape in raw_shapes:
            batches = _batches(dataset, shape)
            result = anyio.run(_fetch, server.url, batches, shape, concurrency, server.pid)
            results.append(result)
            usage = result.usage
            log(
                f"  {shape.kind} x{shape.batch_size}: {result.rows / usage.wall:,.0f} rows/s, "
                f"server {percent(usage.share(usage.server))}, "
                f"others {percent(usage.share(usage.others))}"
            )
    return results
