"""``python -m benchmarks [PART ...]``: the benchmark suite.

Parts, each runnable alone (``python -m benchmarks decode``), each a few
minutes at most on a 2-core machine:

``decode``     decoding without a network: our JSON and XML paths (XML with
               xmltodict and with lxml) against a bare msgspec decoder,
               ``json.loads``, ``orjson.loads``, pydantic v2, bare
               ``xmltodict.parse`` and bare lxml (`benchmarks.decode`)
``e2e``        end to end over TCP, 200 000 rows at 8 and 64 in flight: organik_async
               (defaults, the httpx backend, httpx-aiohttp's transport) against
               hand-written httpx and aiohttp loops (`benchmarks.endtoend`)
``overhead``   per-request overhead, one ID per request (`benchmarks.overhead`)
``simulator``  the simulator alone, to show it is not the bottleneck
               (`benchmarks.simulator`)
``fanout``     fan-out scaling with 100 ms latency and without (`benchmarks.fanout`)
``memory``     streaming memory at 250 000 and 1 000 000 rows (`benchmarks.memory`)
``tuning``     the adaptive concurrency limit and batch size against a capped simulator
               (`benchmarks.tuning`)
``percall``    a one-ID call's client CPU by layer: HTTP library, request path, engine
               (`benchmarks.percall`)
``shared``     N processes against a capped simulator, each with its own limits or all
               sharing one budget through Redis; Redis's cost per request
               (`benchmarks.shared_limits`)

With no part named, all of them run. Each part writes
``benchmarks/results/<part>.json`` (machine, versions, date, command, figures);
then ``python -m benchmarks.report`` makes ``benchmarks/results/<part>.md`` (the
tables) and the e2e chart from every results file. ``report`` as a part does only
that, measuring nothing. ``--quick`` runs small versions of the parts and writes no
file. Tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import msgspec

from . import (
    decode,
    endtoend,
    fanout,
    memory,
    overhead,
    percall,
    report,
    shared_limits,
    simulator,
    tuning,
)
from ._common import (
    CLIENT_CPU,
    Log,
    can_pin,
    machine_facts,
    pin_to,
    unpinned,
    wait_until_quiet,
    write_results,
)

PARTS = (
    "decode", "e2e", "overhead", "simulator", "fanout", "memory", "tuning", "percall", "shared",
)  # fmt: skip
UNPINNED_PARTS = frozenset({"tuning", "shared"})
"""Parts whose server runs in a thread of this process: they run on every CPU."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="organik_async's benchmark suite; see the module docstring for the parts.",
    )
    parser.add_argument(
        "parts", nargs="*", metavar="PART", help=f"any of {', '.join(PARTS)}, or report"
    )
    parser.add_argument("--quick", action="store_true", help="small versions; no files written")
    parser.add_argument(
        "--rounds",
        type=int,
        help="timed rounds per point (decode/e2e/overhead/shared); tuning: adaptive/fixed pairs",
    )
    parser.add_argument("--rows", type=int, default=endtoend.DEFAULT_ROWS, help="e2e: rows")
    parser.add_argument(
        "--batch", type=int, default=endtoend.DEFAULT_BATCH, help="e2e: IDs per request"
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(map(str, endtoend.DEFAULT_CONCURRENCY)),
        help="e2e: requests in flight, a list",
    )
    parser.add_argument(
        "--methods", default=",".join(endtoend.METHOD_KEYS), help="e2e: methods, a comma list"
    )
    parser.add_argument(
        "--requests", type=int, default=overhead.DEFAULT_REQUESTS, help="overhead: requests"
    )
    parser.add_argument("--decode-sizes", help="decode: body sizes in rows (default 500,100000)")
    parser.add_argument("--levels", help="fanout: max_concurrency levels (default 1,8,32,64,128)")
    parser.add_argument(
        "--repeat", type=int, help="fanout: timed calls per point (default 3; x3 when CPU-bound)"
    )
    parser.add_argument("--latency-ms", type=float, default=100.0, help="fanout: latency")
    parser.add_argument("--sizes", help="memory: dataset sizes (default 250000,1000000)")
    parser.add_argument("--tuning-rows", type=int, default=tuning.DEFAULT_ROWS, help="tuning: rows")
    parser.add_argument(
        "--tuning-latency-ms",
        type=float,
        default=tuning.DEFAULT_LATENCY * 1000,
        help="tuning: the simulator's latency",
    )
    parser.add_argument(
        "--calls", type=int, default=percall.DEFAULT_CALLS, help="percall: calls per round"
    )
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--no-pin", action="store_true", help="do not pin client and server")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each part, and each round of e2e and overhead, wait up to this long "
        "for other processes to leave the CPUs idle",
    )
    args = parser.parse_args(argv)
    args.report_only = args.parts == ["report"]
    args.parts = [] if args.report_only else (args.parts or list(PARTS))
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS} or report")
    levels = args.levels or ("1,8,32" if args.quick else ",".join(map(str, fanout.DEFAULT_LEVELS)))
    args.level_list = tuple(int(v) for v in levels.split(","))
    args.repeat = args.repeat or (1 if args.quick else 3)
    sizes = args.sizes or (
        "50000,200000" if args.quick else ",".join(map(str, memory.DEFAULT_SIZES))
    )
    args.size_list = tuple(int(v) for v in sizes.split(","))
    decode_sizes = args.decode_sizes or ("500,10000" if args.quick else "500,100000")
    args.decode_size_list = tuple(int(v) for v in decode_sizes.split(","))
    args.concurrency_list = tuple(int(v) for v in args.concurrency.split(","))
    chosen = [k.strip() for k in args.methods.split(",") if k.strip()]
    if unknown := set(chosen) - set(endtoend.METHOD_KEYS):
        parser.error(f"unknown method(s) {sorted(unknown)}; choose from {endtoend.METHOD_KEYS}")
    args.method_list = [m for m in endtoend.METHODS if m.key in chosen]
    if args.quick:
        args.rows = min(args.rows, 50_000)
        args.requests = min(args.requests, 200)
        args.tuning_rows = min(args.tuning_rows, 20_000)
        args.calls = min(args.calls, 100)
    return args


# --- the parts: each returns the figures its results file keeps ---------------------------


def run_decode(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    rounds = args.rounds or (2 if args.quick else 5)
    return decode.run_decode_part(args.decode_size_list, rounds, log)


def run_e2e(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    rounds = args.rounds or (1 if args.quick else 5)
    points = endtoend.run_e2e(
        rows=args.rows,
        batch=args.batch,
        levels=args.concurrency_list,
        rounds=rounds,
        methods=args.method_list,
        pin=args.pin,
        log=log,
        before_round=args.before_round,
    )
    return {
        "rows": args.rows,
        "batch": args.batch,
        "rounds": rounds,
        "points": [p.summary() for p in points],
    }


def run_overhead(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    points = overhead.run_overhead(
        requests=args.requests,
        rounds=args.rounds or (1 if args.quick else 5),
        methods=overhead.METHODS,
        pin=args.pin,
        log=log,
        before_round=args.before_round,
    )
    return {"requests": args.requests, "points": [p.summary() for p in points]}


def run_simulator(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    rows, concurrency = (100_000 if args.quick else 250_000), 8
    shapes = simulator.shapes(args.quick)
    results = simulator.run_simulator(rows, shapes, concurrency=concurrency, pin=args.pin, log=log)
    return {"rows": rows, "concurrency": concurrency, "shapes": results}


def run_fanout(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    scenarios = fanout.scenarios(args.level_list, args.latency_ms, quick=args.quick)
    return fanout.run_fanout(
        scenarios, repeat=args.repeat, pin=args.pin, backend=args.backend, log=log
    )


def run_memory(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    results = memory.run_memory(args.size_list, pin=args.pin, backend=args.backend, log=log)
    return {"results": results}


def run_tuning(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    pairs = args.rounds or (1 if args.quick else tuning.DEFAULT_PAIRS)
    latency = args.tuning_latency_ms / 1000
    with unpinned() if args.pin else contextlib.nullcontext():
        return anyio.run(
            tuning.run_tuning, args.tuning_rows, pairs, latency, log, backend=args.backend
        )


def run_percall(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    return percall.run_percall(args.calls, percall.BACKENDS, pin=args.pin, log=log)


def run_shared(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    with unpinned() if args.pin else contextlib.nullcontext():
        return shared_limits.run_shared(
            rows=shared_limits.QUICK_ROWS if args.quick else shared_limits.DEFAULT_ROWS,
            counts=shared_limits.PROCESS_COUNTS,
            rounds=args.rounds or (1 if args.quick else 3),
            backend=args.backend,
            log=log,
        )


RUNNERS: dict[str, Callable[[argparse.Namespace, Log], dict[str, Any]]] = {
    "decode": run_decode,
    "e2e": run_e2e,
    "overhead": run_overhead,
    "simulator": run_simulator,
    "fanout": run_fanout,
    "memory": run_memory,
    "tuning": run_tuning,
    "percall": run_percall,
    "shared": run_shared,
}


def _write_tables(log: Log) -> None:
    for path in report.write():
        log(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.pin = not args.no_pin and can_pin()
    log = Log()
    if args.report_only:
        _write_tables(log)
        return 0
    if args.pin:
        pin_to(CLIENT_CPU)  # the servers are started pinned to the other CPU
    args.before_round = lambda: wait_until_quiet(args.wait_quiet, log) if args.wait_quiet else 0
    for part in args.parts:
        args.before_round()
        facts = machine_facts(args.pin and part not in UNPINNED_PARTS)  # as the part starts
        started = time.perf_counter()
        figures = RUNNERS[part](args, log)
        seconds = time.perf_counter() - started
        log(f"{part}: {seconds:.0f} s")
        figures["seconds"] = seconds
        document = {"part": part, "machine": facts, "figures": figures}
        if not args.quick:
            log(f"wrote {write_results(part, figures, facts)}")
        print(f"## {part}\n\n" + report.render(_builtins(document), note=False), flush=True)
    if args.parts and not args.quick:
        _write_tables(log)
    return 0


def _builtins(document: dict[str, Any]) -> dict[str, Any]:
    """The document as its results file holds it (dataclasses as dicts, tuples as lists)."""
    converted: dict[str, Any] = msgspec.to_builtins(document)
    return converted


if __name__ == "__main__":
    sys.exit(main())
