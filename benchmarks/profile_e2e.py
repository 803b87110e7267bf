"""Where organik_async's client time goes, end to end: ``python -m benchmarks.profile_e2e``.

The end-to-end benchmark's workload (the simulator in its own process, rows
fetched by GSM track ID over TCP, ``detailed_report`` with the client's
defaults) run once unprofiled, for the true CPU µs/row, and once under
``cProfile``. The profile's own time per function is grouped by component
(our modules, httpx, httpcore, h11, anyio, asyncio, msgspec, the socket
calls) and scaled to the unprofiled CPU time, so each component reads as µs
per row. cProfile slows Python calls more than C calls, so the scaled split
leans a little towards Python-heavy components; it says where the time goes,
not to the last 10 %. Call counts per request and per ID (cancel scopes
entered, URLs parsed, body chunks read, IDs validated and canonicalised) come
from the same profile and are exact.

``--output FILE`` also writes the profile (``pstats`` format) for
``snakeviz``/``pstats`` browsing; ``--transport aiohttp`` profiles the client
with its aiohttp transport instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from httpx_aiohttp import AiohttpTransport

from organik_async import BatchSizes, OrganikClient
from organik_async.testing import DEMO_API_KEY, Dataset

from ._common import CLIENT_CPU, Log, SimulatorServer, can_pin, machine_lines, pin_to

COMPONENTS: Final = (
    ("organik_async/_bulk", "organik_async._bulk (batching, workers, bookkeeping)"),
    ("organik_async/_client", "organik_async._client (request path, reading, errors)"),
    ("organik_async/_codec", "organik_async._codec (encode, decode wrapper)"),
    ("organik_async/_pool", "organik_async._pool (pool choice, limiter)"),
    ("organik_async/_requester", "organik_async._requester (one request: send, read, retry)"),
    ("organik_async/_models", "organik_async._models (ID checks, rows)"),
    ("organik_async/", "organik_async, other modules"),
    ("httpx_aiohttp/", "httpx_aiohttp"),
    ("aiohttp/", "aiohttp"),
    ("httpx/", "httpx"),
    ("httpcore/", "httpcore"),
    ("h11/", "h11"),
    ("anyio/", "anyio"),
    ("sniffio/", "sniffio"),
    ("asyncio/", "asyncio (event loop, tasks, streams)"),
    ("contextlib", "contextlib"),
    ("logging/", "logging"),
)
BUILTINS: Final = (
    ("msgspec.json.Decoder", "msgspec decode (C)"),
    ("msgspec", "msgspec other (C)"),
    ("_socket.socket", "socket send/recv (C, kernel)"),
    ("select.epoll", "epoll (C, kernel)"),
)
COUNTED: Final = (
    ("anyio/_backends/_asyncio.py", "__enter__", "CancelScope", "anyio cancel scopes entered"),
    ("httpx/_urlparse.py", "urlparse", None, "httpx URL strings parsed"),
    ("httpx/_models.py", "aiter_bytes", None, "response.aiter_bytes chunks read"),
    ("httpx/_decoders.py", "decode", None, "httpx content-decoder calls"),
    ("organik_async/", "validate_id", None, "IDs validated (validate_id)"),
    ("organik_async/", "canonical_id", None, "IDs canonicalised (canonical_id)"),
    ("organik_async/", "decode_json", None, "JSON bodies decoded"),
    ("contextlib.py", "__aenter__", None, "async context managers entered (contextlib)"),
)


def _component(filename: str, function: str) -> str:
    if filename == "~":
        for needle, name in BUILTINS:
            if needle in function:
                return name
        return "other C calls (builtins)"
    path = filename.replace("\\", "/")
    for needle, name in COMPONENTS:
        if needle in path:
            return name
    return "other Python"


async def _fetch_singly(url: str, ids: Sequence[int | str], transport: str) -> int:
    """The per-request overhead workload: one call per ID, one after the other."""
    async with OrganikClient(
        DEMO_API_KEY,
        base_url=url,
        transport=AiohttpTransport() if transport == "aiohttp" else None,
    ) as client:
        rows = 0
        for track_id in ids:
            rows += len(await client.detailed_report(gsm_track_ids=[track_id]))
    return rows


async def _fetch(url: str, ids: Sequence[int | str], concurrency: int, transport: str) -> int:
    async with OrganikClient(
        DEMO_API_KEY,
        base_url=url,
        max_concurrency=concurrency,
        batch_sizes=BatchSizes(gsm_track_ids=500),
        transport=AiohttpTransport() if transport == "aiohttp" else None,
    ) as client:
        await client.detailed_report(gsm_track_ids=ids[: concurrency * 500])  # warm-up
        gc.collect()
        rows = await client.detailed_report(gsm_track_ids=ids)
    return len(rows)


def _timed(url: str, ids: Sequence[int | str], c: int, transport: str) -> tuple[float, int]:
    started = time.process_time()
    rows = asyncio.run(_fetch(url, ids, c, transport))
    return time.process_time() - started, rows


def profile(args: argparse.Namespace, log: Log) -> str:
    ids = list(Dataset.generate(args.rows).gsm_track_ids())
    if args.singly:
        ids = ids[: args.singly]
        requests, warm_requests, batch = len(ids), 0, 1
    else:
        requests = -(-len(ids) // 500)
        warm_requests, batch = min(requests, args.concurrency), 500

    def workload() -> int:
        if args.singly:
            return asyncio.run(_fetch_singly(server.url, ids, args.transport))
        return asyncio.run(_fetch(server.url, ids, args.concurrency, args.transport))

    with SimulatorServer(args.rows, pin=args.pin) as server:
        log(f"server up at {server.url}")
        plain = []
        for _ in range(3):
            started = time.process_time()
            workload()
            plain.append(time.process_time() - started)
        cpu = sorted(plain)[1]
        profiler = cProfile.Profile()
        profiler.enable()
        rows = workload()
        profiler.disable()
    if rows != len(ids):
        raise RuntimeError(f"{rows} rows for {len(ids)} IDs")
    if args.output:
        profiler.dump_stats(args.output)
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    # The profiled run includes the warm-up call (C requests); so does `cpu`.
    all_rows = len(ids) + warm_requests * batch
    all_ids = all_rows
    all_requests = requests + warm_requests
    scale = cpu / total
    by_component: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_component[_component(filename, function)] += tottime
    lines = [
        (
            f"## Profile: organik_async `detailed_report`, {args.transport} transport, "
            f"one call per ID, {len(ids):,} calls in sequence"
            if args.singly
            else f"## Profile: organik_async `detailed_report`, {args.transport} transport, "
            f"C={args.concurrency}, {len(ids):,} rows by GSM track ID, 500 per request"
        ),
        "",
        *machine_lines(args.pin),
        "",
        f"Unprofiled client CPU: {cpu:.2f} s for {all_rows:,} rows (warm-up call included) = "
        f"**{cpu / all_rows * 1e6:.2f} µs/row**, {cpu / all_requests * 1e6:,.0f} µs/request. "
        f"cProfile's total {total:.2f} s is scaled to it.",
        "",
        "| component (own time) | share | µs/row | µs/request |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in sorted(by_component.items(), key=lambda kv: -kv[1]):
        share = seconds / total
        if share < 0.002:
            continue
        lines.append(
            f"| {name} | {share:.1%} | {seconds * scale / all_rows * 1e6:.2f} | "
            f"{seconds * scale / all_requests * 1e6:,.0f} |"
        )
    lines += ["", "| what | calls | per request | per ID |", "|---|---:|---:|---:|"]
    for file_part, function, cls, label in COUNTED:
        calls = sum(
            entry[1]
            for (filename, _line, name), entry in raw.items()
            if file_part in filename.replace("\\", "/")
            and name == function
            and (cls is None or _defines(filename, _line, cls))
        )
        lines.append(
            f"| {label} | {calls:,} | {calls / all_requests:.1f} | {calls / all_ids:.2f} |"
        )
    lines += ["", "Top 30 functions by own time (scaled µs/row):", "", "```"]
    ranked = sorted(raw.items(), key=lambda kv: -kv[1][2])[:30]
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _c) in ranked:
        short = filename.split("site-packages/")[-1].split("/work/wt/")[-1]
        lines.append(
            f"{tottime * scale / all_rows * 1e6:6.3f} µs/row  {ncalls:>9,} calls  "
            f"cum {cumtime * scale / all_rows * 1e6:6.2f}  {short}:{line}({function})"
        )
    lines.append("```")
    return "\n".join(lines)


def _defines(filename: str, line: int, cls: str) -> bool:
    """Whether the function at ``filename:line`` is a method of the class ``cls``."""
    try:
        with open(filename, encoding="utf-8") as source:
            text = source.readlines()[: line - 1]
    except OSError:
        return False
    for previous in reversed(text):
        if previous.startswith("class "):
            return previous.startswith(f"class {cls}")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_e2e")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--transport", choices=("httpx", "aiohttp"), default="httpx")
    parser.add_argument("--output", type=Path, help="also write the raw profile here")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--singly",
        type=int,
        metavar="N",
        help="profile the per-request overhead instead: N calls of one ID each, in sequence",
    )
    parser.add_argument(
        "--plain",
        type=int,
        metavar="N",
        help="no cProfile: run the workload N times, for a sampling profiler to attach "
        "(py-spy record -r 500 --format raw -- python -m benchmarks.profile_e2e --plain 10)",
    )
    parser.add_argument(
        "--collapsed",
        type=Path,
        metavar="FILE",
        help="measure nothing: group a sampling profiler's collapsed stacks (py-spy's raw "
        "format) by component, as the cProfile table does",
    )
    args = parser.parse_args(argv)
    if args.collapsed:
        print(collapsed_table(args.collapsed))
        return 0
    args.pin = not args.no_pin and can_pin()
    if args.pin:
        pin_to(CLIENT_CPU)
    if args.plain:
        log = Log()
        ids = list(Dataset.generate(args.rows).gsm_track_ids())
        with SimulatorServer(args.rows, pin=args.pin) as server:
            for _ in range(args.plain):
                seconds, rows = _timed(server.url, ids, args.concurrency, args.transport)
                log(f"{rows:,} rows, {seconds / rows * 1e6:.2f} µs/row (warm-up included)")
        return 0
    print(profile(args, Log()))
    return 0


def collapsed_table(path: Path) -> str:
    """Samples by component of the innermost frame that is not asyncio's loop plumbing.

    Each line of a collapsed-stack file is ``frame;frame;...;leaf COUNT``, a
    py-spy frame being ``function (file:line)``. A sample is charged to the
    component of its leaf; idle samples (the loop waiting in epoll) are
    counted apart, so the shares are of the busy time.
    """
    by_component: dict[str, int] = defaultdict(int)
    by_function: dict[str, int] = defaultdict(int)
    total = idle = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        leaf = stack.rsplit(";", 1)[-1]
        function, _, where = leaf.partition(" (")
        filename = where.rstrip(")").rsplit(":", 1)[0]
        if function == "select" and "selectors.py" in filename:
            idle += count
            continue
        total += count
        by_component[_component(filename, function)] += count
        by_function[f"{function} ({filename.split('site-packages/')[-1]})"] += count
    lines = [
        f"{total:,} busy samples ({idle:,} idle in epoll left out)",
        "",
        "| component (innermost frame) | share of busy samples |",
        "|---|---:|",
    ]
    for name, count in sorted(by_component.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {count / total:.1%} |")
    lines += ["", "| function (innermost frame) | share |", "|---|---:|"]
    for name, count in sorted(by_function.items(), key=lambda kv: -kv[1])[:25]:
        lines.append(f"| {name} | {count / total:.1%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
