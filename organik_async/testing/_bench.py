"""``python -m organik_async.testing bench``: how fast does the simulator serve?

The simulator is meant never to be the bottleneck of a client benchmark. This
measures it alone: a server process (``serve``) and, in this process, a raw
``httpx`` client that only reads the bytes (no decoding) and counts the rows
in them. Both sides know the IDs because the dataset is deterministic.

`fetch_all()` is the one implementation of that measurement: the
``bench`` command and the project's benchmark suite (``benchmarks/``) both
call it, each with its own way of reading the clocks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio
import httpx

from .._models import Format
from ._data import Dataset
from ._keys import DEMO_API_KEY

__all__ = ["BenchResult", "Fetched", "fetch_all", "run_bench"]

_ROW_MARKERS: dict[Format, bytes] = {"json": b'"gsm":', "xml": b"<item>"}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched:
    """What `fetch_all()` received."""

    rows: int
    requests: int
    body_bytes: int


async def fetch_all(
    url: str,
    batches: Sequence[Sequence[int | str]],
    *,
    kind: str,
    fmt: Format = "json",
    concurrency: int,
    meter: Callable[[], Callable[[], T]],
) -> tuple[Fetched, T]:
    """POST every batch once, ``concurrency`` in flight on one httpx pool; count rows.

    ``kind`` is the body's ID field (``"gsm_track_ids"``...). Rows are counted
    in the answers' bytes, never decoded, so the client costs little next to
    the server. One untimed request opens a connection first; then
    ``meter()`` is called as timing starts, and what it returns is called as
    timing ends: its result comes back with the counts (wall time and server
    CPU for the ``bench`` command, a full CPU breakdown for the suite).
    """
    path = f"/v2/{DEMO_API_KEY}/detailedreport/json/{fmt}/"
    marker = _ROW_MARKERS[fmt]
    queue = iter(batches)
    rows = requests = body_bytes = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:

        async def post(batch: Sequence[int | str]) -> bytes:
            response = await http.post(path, json={"data": {kind: list(batch)}})
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")
            return response.content

        async def worker() -> None:
            nonlocal rows, requests, body_bytes
            for batch in queue:
                content = await post(batch)
                rows += content.count(marker)
                requests += 1
                body_bytes += len(content)

        if batches:
            await post(batches[0])  # opens a connection
        stop = meter()
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        measured = stop()
    return Fetched(rows, requests, body_bytes), measured


@dataclass(frozen=True, slots=True)
class BenchResult:
    """What one run of the ``bench`` command measured."""

    rows: int
    requests: int
    seconds: float
    body_bytes: int
    server_cpu: float | None
    """CPU seconds the server process spent during the run (Linux only)."""

    def describe(self, args: argparse.Namespace) -> str:
        text = (
            f"{self.rows:,} rows in {self.requests:,} requests ({args.kind} IDs, "
            f"{args.batch} per request, {args.concurrency} in flight, {args.format} answers) "
            f"in {self.seconds:.2f}s: {self.rows / self.seconds:,.0f} rows/s, "
            f"{self.body_bytes / self.seconds / 1e6:,.0f} MB/s"
        )
        if self.server_cpu:
            text += (
                f"; server CPU {self.server_cpu:.2f}s "
                f"({self.server_cpu / self.seconds:.0%} of one core), "
                f"i.e. it could serve {self.rows / self.server_cpu:,.0f} rows/s on one core"
            )
        return text


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wall_and_server_cpu(pid: int) -> Callable[[], tuple[float, float | None]]:
    """A meter for `fetch_all()`: wall seconds and the server's CPU seconds."""
    cpu_before = _cpu_seconds(pid)
    started = time.perf_counter()

    def stop() -> tuple[float, float | None]:
        seconds = time.perf_counter() - started
        cpu_after = _cpu_seconds(pid)
        if cpu_before is None or cpu_after is None:
            return seconds, None
        return seconds, cpu_after - cpu_before

    return stop


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "organik_async.testing", "serve", "--port", "0",
        "--rows", str(args.rows), "--seed", str(args.seed), "--warm", args.format,
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    if not url.startswith("http://"):
        server.kill()
        raise RuntimeError("the simulator's server did not start")
    return server, url


def _batches(dataset: Dataset, kind: str, size: int) -> Iterator[list[int | str]]:
    ids: list[int | str] = (
        list(dataset.transaction_ids) if kind == "transaction" else list(dataset.gsm_track_ids())
    )
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


async def _drive(
    url: str, args: argparse.Namespace, dataset: Dataset, server_pid: int
) -> BenchResult:
    field = "transaction_ids" if args.kind == "transaction" else "gsm_track_ids"
    batches = list(_batches(dataset, args.kind, args.batch))
    fetched, (seconds, server_cpu) = await fetch_all(
        url,
        batches,
        kind=field,
        fmt=args.format,
        concurrency=args.concurrency,
        meter=lambda: _wall_and_server_cpu(server_pid),
    )
    if fetched.rows != len(dataset):
        raise RuntimeError(f"expected {len(dataset)} rows, counted {fetched.rows}")
    return BenchResult(fetched.rows, fetched.requests, seconds, fetched.body_bytes, server_cpu)


def run_bench(args: argparse.Namespace) -> BenchResult:
    """Start a server process, fetch every row once through it, stop it."""
    dataset = Dataset.generate(args.rows, seed=args.seed)
    server, url = _start_server(args)
    try:
        return anyio.run(_drive, url, args, dataset, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
