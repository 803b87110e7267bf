"""Where the client's CPU goes in the e2e workload: ``python -m benchmarks.profile_e2e``.

The e2e part's organik_async workload (`benchmarks.endtoend`: every row of a dataset
by GSM track ID, 500 per request, C requests in flight, the simulator in its own
process) runs three times unprofiled, for the client's true CPU time, then once with
cProfile on during its timed fetch. The profile's own time per function is grouped by
where the function lives (each organik_async module, each other package or
standard-library module, each C function by name) and scaled to the unprofiled CPU
time, so each group reads as µs per row. cProfile slows Python calls more than C calls,
so the split leans towards Python-heavy groups: it says where the time goes, not to the
last 10 %. It prints and writes no results file: a profile is a diagnosis, not a figure
the docs show.

``--output FILE`` also writes the raw profile (``pstats`` format); ``--plain N`` only
runs the workload N times, for a sampling profiler to attach to (``py-spy record --
python -m benchmarks.profile_e2e --plain 5``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any, Final

from organik_async.testing import Dataset

from ._common import CLIENT_CPU, Log, SimulatorServer, can_pin, markdown_table, pin_to
from ._methods import ORGANIK_VARIANTS, Method
from .endtoend import DEFAULT_BATCH, Opener, measure, organik_method

VARIANTS: Final = {variant.key: variant for variant in ORGANIK_VARIANTS}
_C_FUNCTION: Final = re.compile(
    r"<(?:built-in )?method '?([\w.]+)'?(?: of '([\w.]+)' objects| of (type) object at \w+)?>"
)
"""cProfile's names of C functions: ``<built-in method builtins.isinstance>``,
``<method 'decode' of 'msgspec.json.Decoder' objects>``, ``<built-in method __new__ of
type object at 0x...>``."""


def group(filename: str, function: str) -> str:
    """Where a profiled function lives: ``organik_async.<module>``, a package or
    standard-library module, or a C function's owner and name."""
    if filename == "~":
        match = _C_FUNCTION.match(function)
        if match is None:
            return f"C: {function}"
        name, owner, of_type = match.groups()
        return f"C: {owner or of_type}.{name}" if owner or of_type else f"C: {name}"
    path = filename.replace("\\", "/")
    if "/organik_async/" in path:
        module = path.rsplit("/organik_async/", 1)[1].removesuffix(".py").replace("/", ".")
        return f"organik_async.{module}"
    if "-packages/" in path:
        return path.rsplit("-packages/", 1)[1].split("/")[0].removesuffix(".py")
    match = re.search(r"/python3\.\d+/([^/]+)", path)
    return match.group(1).removesuffix(".py") if match else path


def _workload(
    method: Method[Opener],
    url: str,
    ids: Sequence[int | str],
    c: int,
    pid: int,
    profiler: cProfile.Profile | None = None,
) -> tuple[float, int]:
    """One e2e measurement; the client's CPU seconds and the rows of the timed fetch."""
    usage, rows = asyncio.run(measure(method, url, ids, c, DEFAULT_BATCH, pid, profiler))
    return usage.client, len(rows)


def profile(args: argparse.Namespace, log: Log) -> str:
    method = organik_method(VARIANTS[args.method])
    ids = list(Dataset.generate(args.rows).gsm_track_ids())
    profiler = cProfile.Profile()
    with SimulatorServer(args.rows, pin=args.pin) as server:
        log(f"server up at {server.url}")
        plain = [
            _workload(method, server.url, ids, args.concurrency, server.pid)[0] for _ in range(3)
        ]
        _workload(method, server.url, ids, args.concurrency, server.pid, profiler)
    if args.output:
        profiler.dump_stats(args.output)
    cpu, rows = median(plain), len(ids)
    requests = -(-rows // DEFAULT_BATCH)
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    scale = cpu / total / rows * 1e6
    by_group: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_group[group(filename, function)] += tottime
    groups = [
        [name, f"{seconds / total:.1%}", f"{seconds * scale:.3f}"]
        for name, seconds in sorted(by_group.items(), key=lambda kv: -kv[1])
        if seconds / total >= 0.002
    ]
    ranked = sorted(raw.items(), key=lambda kv: -kv[1][2])[:25]
    functions = [
        [f"{group(filename, function)}: {function} (line {line})", f"{ncalls:,}",
         f"{tottime * scale:.3f}", f"{cumtime * scale:.3f}"]
        for (filename, line, function), (_cc, ncalls, tottime, cumtime, _c) in ranked
    ]  # fmt: skip
    return "\n\n".join(
        [
            f"Profile of `{method.name}`, C={args.concurrency}, {rows:,} rows by GSM track ID, "
            f"{DEFAULT_BATCH} per request, the timed fetch only. Unprofiled client CPU (median "
            f"of 3 runs): {cpu / rows * 1e6:.2f} µs/row, {cpu / requests * 1e6:,.0f} "
            "µs/request; the profile's own time is scaled to it.",
            markdown_table(["where (own time)", "share", "µs/row"], groups),
            markdown_table(["function", "calls", "own µs/row", "cumulative µs/row"], functions),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_e2e", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--method", choices=sorted(VARIANTS), default="organik")
    parser.add_argument("--output", type=Path, help="also write the raw profile here")
    parser.add_argument("--plain", type=int, metavar="N", help="no profiler: run N times")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    args.pin = not args.no_pin and can_pin()
    if args.pin:
        pin_to(CLIENT_CPU)
    log = Log()
    if args.plain:
        method = organik_method(VARIANTS[args.method])
        ids = list(Dataset.generate(args.rows).gsm_track_ids())
        with SimulatorServer(args.rows, pin=args.pin) as server:
            for _ in range(args.plain):
                cpu, rows = _workload(method, server.url, ids, args.concurrency, server.pid)
                log(f"{rows:,} rows, {cpu / rows * 1e6:.2f} µs/row")
        return 0
    print(profile(args, log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
