"""``python -m benchmarks [PART ...]``: the benchmark suite (issues 4 and 11).

Parts, each runnable alone (``python -m benchmarks decode``), each a few
minutes at most on the project's 2-core machine:

``decode``     decoding without a network: our JSON and XML paths (XML with
               xmltodict and with lxml) against a bare msgspec decoder,
               ``json.loads``, ``orjson.loads``, pydantic v2, bare
               ``xmltodict.parse`` and bare lxml (:mod:`benchmarks.decode`)
``e2e``        end to end over TCP, 200 000 rows at 8 and 64 in flight: organik_async
               (defaults, the httpx backend, httpx-aiohttp's transport) against
               hand-written httpx and aiohttp loops (:mod:`benchmarks.endtoend`)
``overhead``   per-request overhead, one ID per request (:mod:`benchmarks.overhead`)
``simulator``  the simulator alone, to show it is not the bottleneck
``fanout``     fan-out scaling with 100 ms latency and without (:mod:`benchmarks.fanout`)
``memory``     streaming memory at 250 000 and 1 000 000 rows (:mod:`benchmarks.memory`)
``tuning``     the adaptive concurrency limit and batch size against a capped simulator
               (:mod:`benchmarks.tuning`)
``shared``     N processes against a capped simulator, each with its own limits or all
               sharing one budget through Redis; Redis's cost per request
               (:mod:`benchmarks.shared_limits`)

With no part named, all of them run. Each part writes
``benchmarks/results/<part>.json`` (machine, versions, date, command, figures,
and its Markdown tables); ``benchmarks/RESULTS.md`` is then assembled from
every results file, and the e2e chart (``benchmarks/results/e2e.png``) is drawn
from ``e2e.json``. ``report`` does only that, measuring nothing. ``--quick``
runs small versions of the parts and writes no file. Tables go to stdout,
progress to stderr.

``benchmarks/pool_scaling.py`` (raw httpx pool designs) and
``benchmarks/profile_e2e.py`` (where the client's time goes) are separate scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from . import decode, endtoend, overhead, shared_limits, tuning
from ._common import (
    CLIENT_CPU,
    DISTURBED,
    RESULTS_DIR,
    Log,
    can_pin,
    machine_facts,
    machine_lines,
    mark,
    pin_to,
    read_results,
    unpinned,
    wait_until_quiet,
    write_results,
)
from .fanout import (
    DEFAULT_LEVELS,
    Point,
    RawShape,
    Scenario,
    fanout_table,
    run_scenario,
    simulator_table,
    simulator_throughput,
)
from .memory import (
    DEFAULT_SIZES,
    KINDS,
    MemoryResult,
    dedupe_costs,
    dedupe_table,
    memory_table,
    run_memory,
)

PARTS = ("decode", "e2e", "overhead", "simulator", "fanout", "memory", "tuning", "shared")
UNPINNED_PARTS = frozenset({"tuning", "shared"})
"""Parts whose server runs in a thread of this process: they run on every CPU."""
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
CHART = RESULTS_DIR / "e2e.png"
FLAT_TOLERANCE = 0.15
PEAK_LIMIT_MB = 150.0
IDEAL_LIMIT = 1.2
IDEAL_UP_TO = 64
NO_DROP_TOLERANCE = 0.05
"""rows/s at C > 8 counts as "no drop" if within 5 % of C=8. Wall times on a
shared VM can swing far more than that (the tables' ± column), so each verdict
also gives the ratio of client CPU per row, which such swings do not move."""


@dataclass(slots=True)
class Report:
    """One part's Markdown and the figures that go into its results file."""

    sections: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, text: str) -> None:
        self.sections.append(text)
        print("\n" + text + "\n", flush=True)

    def markdown(self) -> str:
        text = "\n\n".join(self.sections)
        if self.verdicts:
            text += "\n\nTargets:\n\n" + "\n".join(f"- {v}" for v in self.verdicts)
        return text


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
        help="timed rounds per point (decode/e2e/overhead); tuning: adaptive/fixed pairs",
    )
    parser.add_argument("--rows", type=int, default=endtoend.DEFAULT_ROWS, help="e2e: rows")
    parser.add_argument(
        "--batch", type=int, default=endtoend.DEFAULT_BATCH, help="e2e: IDs per request"
    )
    parser.add_argument("--concurrency", default="8,64", help="e2e: requests in flight, a list")
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
    levels = args.levels or ("1,8,32" if args.quick else ",".join(map(str, DEFAULT_LEVELS)))
    args.level_list = tuple(int(v) for v in levels.split(","))
    args.repeat = args.repeat or (1 if args.quick else 3)
    sizes = args.sizes or ("50000,200000" if args.quick else ",".join(map(str, DEFAULT_SIZES)))
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
    return args


# --- the parts --------------------------------------------------------------------------


def run_decode_part(args: argparse.Namespace, report: Report, log: Log) -> None:
    rounds = args.rounds or (2 if args.quick else 5)
    figures = decode.run_decode(args.decode_size_list, rounds, log)
    report.add(decode.decode_table(figures))
    report.figures = {"decoders": figures, "ratios": decode.ratios(figures)}


def run_e2e_part(args: argparse.Namespace, report: Report, log: Log) -> None:
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
    report.add(endtoend.e2e_markdown(points, rows=args.rows, batch=args.batch, rounds=rounds))
    report.figures = {
        "rows": args.rows,
        "batch": args.batch,
        "rounds": rounds,
        "points": [p.summary() for p in points],
    }


def run_overhead_part(args: argparse.Namespace, report: Report, log: Log) -> None:
    rounds = args.rounds or (1 if args.quick else 5)
    points = overhead.run_overhead(
        requests=args.requests,
        rounds=rounds,
        methods=overhead.METHODS,
        pin=args.pin,
        log=log,
        before_round=args.before_round,
    )
    report.add(overhead.overhead_markdown(points, requests=args.requests, rounds=rounds))
    report.figures = {"requests": args.requests, "points": [p.summary() for p in points]}


def run_simulator(args: argparse.Namespace, report: Report, log: Log) -> None:
    rows = 100_000 if args.quick else 250_000
    shapes = [
        RawShape("gsm_track_ids", 20, 500 if args.quick else 3_000),
        RawShape("gsm_track_ids", 250, 128 if args.quick else 1_000),
        RawShape("gsm_track_ids", 500, 64 if args.quick else 500),
        RawShape("transaction_ids", 20, None, passes=1 if args.quick else 5),
    ]
    concurrency = 8
    results = simulator_throughput(rows, shapes, concurrency=concurrency, pin=args.pin, log=log)
    report.add(simulator_table(results, rows, concurrency))
    report.figures = {"rows": rows, "concurrency": concurrency, "shapes": results}


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """The latency-bound table and the CPU-bound table."""
    levels = args.level_list
    compare = tuple(c for c in (32, 64, 128) if c in levels)
    latency = Scenario(
        f"latency-bound ({args.latency_ms:g} ms)",
        latency=args.latency_ms / 1000,
        batch_size=20,
        batches_per_slot=8 if args.quick else 16,
        min_batches=16,
        levels=levels,
        compare_levels=compare,
    )
    cpu = Scenario(
        "CPU-bound (no latency)",
        latency=0.0,
        batch_size=250,
        batches_per_slot=4,
        min_batches=128 if args.quick else 512,
        levels=levels,
        compare_levels=compare,
        repeat_scale=3,
    )
    return [latency, cpu]


def run_fanout(args: argparse.Namespace, report: Report, log: Log) -> None:
    tables: list[dict[str, Any]] = []
    for scenario in scenarios(args):
        repeat = args.repeat * scenario.repeat_scale
        points, server = run_scenario(
            scenario, repeat=repeat, pin=args.pin, backend=args.backend, log=log
        )
        table = fanout_table(scenario, points, repeat)
        served = server.stats.get("rows_served")
        if served is not None:
            table += (
                f"\n\nThe server counted {server.stats.get('requests', 0):,} requests and "
                f"{served:,} rows (warm-ups included)."
            )
        report.add(table)
        report.verdicts += fanout_verdicts(scenario, points)
        tables.append(
            {
                "scenario": scenario,
                "repeat": repeat,
                "points": [
                    {
                        "case": p.case,
                        "pools": p.pools,
                        "rows_per_call": p.rows_per_call,
                        "walls": p.walls,
                        "usages": p.usages,
                        "retries": p.retries,
                        "failure": p.failure,
                        "client_us_per_row": p.client_us_per_row,
                    }
                    for p in points
                ],
            }
        )
    report.figures = {"scenarios": tables}


def fanout_verdicts(scenario: Scenario, points: Sequence[Point]) -> list[str]:
    """Issue 4's two fan-out targets, judged on the default pool design."""
    default = {p.case.concurrency: p for p in points if p.case.default_pools}
    verdicts = []
    if scenario.latency > 0:
        for c, point in sorted(default.items()):
            if c > IDEAL_UP_TO:
                continue
            ideal = -(-point.case.batches // c) * scenario.latency
            ratio = point.wall / ideal
            verdicts.append(
                f"{mark(ratio <= IDEAL_LIMIT)} {scenario.name}, C={c}: wall {point.wall:.2f}s "
                f"= {ratio:.2f} x ideal {ideal:.2f}s (target <= {IDEAL_LIMIT})" + _disturbed(point)
            )
    base = default.get(8)
    if base is not None:
        for c, point in sorted(default.items()):
            if c <= 8:
                continue
            ratio = point.rows_per_second / base.rows_per_second
            cpu = point.client_us_per_row / base.client_us_per_row
            verdicts.append(
                f"{mark(ratio >= 1 - NO_DROP_TOLERANCE)} {scenario.name}, no drop 8 -> {c}: "
                f"{point.rows_per_second:,.0f} vs {base.rows_per_second:,.0f} rows/s "
                f"({ratio:.2f} x; target >= {1 - NO_DROP_TOLERANCE:.2f}; walls ±"
                f"{point.spread:.0%} / ±{base.spread:.0%}; client CPU per row {cpu:.2f} x)"
                + _disturbed(point, base)
            )
    return verdicts


def _disturbed(*points: Point) -> str:
    if any(p.cpu_share("others") > DISTURBED for p in points):
        return " (†: disturbed by other processes, see the table)"
    return ""


def run_memory_part(args: argparse.Namespace, report: Report, log: Log) -> None:
    results = run_memory(args.size_list, pin=args.pin, backend=args.backend, log=log)
    report.add(memory_table(results))
    report.add(dedupe_table(results))
    report.verdicts += memory_verdicts(results)
    report.figures = {"results": results, "dedupe_mib_per_million": dedupe_costs(results)}


def memory_verdicts(results: Sequence[MemoryResult]) -> list[str]:
    """Flat (within 15 %) and under 150 MB without dedupe, for each kind of input; the
    peak with dedupe (the default) against 150 MB too."""
    verdicts = []
    for kind in KINDS:
        plain = sorted(
            (r for r in results if r.case.kind == kind and not r.case.dedupe),
            key=lambda r: r.case.rows,
        )
        verdicts += [_peak_verdict(r) for r in plain]
        if len(plain) >= 2:
            verdicts.append(_flat_verdict(plain[0], plain[-1]))
        verdicts += [
            f"{_peak_verdict(r)}, with dedupe=True (the default)"
            for r in results
            if r.case.kind == kind and r.case.dedupe
        ]
    for case, per_million in dedupe_costs(results):
        unit = "rows" if case.kind == "transaction_ids" else "IDs"
        verdicts.append(
            f"(info) dedupe=True costs {per_million:,.0f} MiB per million {unit} "
            f"(by {case.kind}, measured at {case.rows:,})"
        )
    return verdicts


def _peak_verdict(result: MemoryResult) -> str:
    peak_mb = result.peak / 1e6
    return (
        f"{mark(peak_mb < PEAK_LIMIT_MB)} memory, {result.case.rows:,} rows by "
        f"{result.case.kind}: peak RSS {peak_mb:.0f} MB (target < {PEAK_LIMIT_MB:.0f} MB)"
    )


def _flat_verdict(small: MemoryResult, large: MemoryResult) -> str:
    ratio = large.peak / small.peak
    return (
        f"{mark(ratio <= 1 + FLAT_TOLERANCE)} memory flat by {small.case.kind}: peak at "
        f"{large.case.rows:,} rows = {ratio:.2f} x peak at {small.case.rows:,} "
        f"(target <= {1 + FLAT_TOLERANCE:.2f}; largest responses "
        f"{large.largest_batch:,} vs {small.largest_batch:,} rows)"
    )


def run_tuning_part(args: argparse.Namespace, report: Report, log: Log) -> None:
    pairs = args.rounds or (1 if args.quick else tuning.DEFAULT_PAIRS)
    latency = args.tuning_latency_ms / 1000
    with unpinned() if args.pin else contextlib.nullcontext():
        figures = anyio.run(
            tuning.run_tuning, args.tuning_rows, pairs, latency, log, backend=args.backend
        )
    report.add(tuning.tuning_markdown(figures))
    report.verdicts += tuning.tuning_verdicts(figures)
    report.figures = figures


def run_shared_part(args: argparse.Namespace, report: Report, log: Log) -> None:
    with unpinned() if args.pin else contextlib.nullcontext():
        figures = shared_limits.run_shared(
            rows=shared_limits.QUICK_ROWS if args.quick else shared_limits.DEFAULT_ROWS,
            counts=shared_limits.PROCESS_COUNTS,
            rounds=args.rounds or (1 if args.quick else 3),
            backend=args.backend,
            log=log,
        )
    report.add(shared_limits.shared_markdown(figures))
    report.verdicts += shared_limits.shared_verdicts(figures)
    report.figures = figures


RUNNERS: dict[str, Callable[[argparse.Namespace, Report, Log], None]] = {
    "decode": run_decode_part,
    "e2e": run_e2e_part,
    "overhead": run_overhead_part,
    "simulator": run_simulator,
    "fanout": run_fanout,
    "memory": run_memory_part,
    "tuning": run_tuning_part,
    "shared": run_shared_part,
}


# --- RESULTS.md and the chart -----------------------------------------------------------


def assemble_results() -> str:
    """``RESULTS.md``: every part's last results file, in the suite's order."""
    sections = [
        "# Benchmark results",
        "Assembled by `python -m benchmarks` from `benchmarks/results/*.json` (each part's "
        "last run; re-run one with `python -m benchmarks PART`). Every part names the command, "
        "the date and the machine it was measured with.",
    ]
    for part in PARTS:
        document = read_results(part)
        if document is None:
            continue
        machine = document["machine"]
        load = ", ".join(f"{v:.2f}" for v in machine["load_average_at_start"])
        versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v != "-")
        sections.append(
            f"## {part}\n\n"
            f"Run on {machine['date']} with `{machine['command']}`: {machine['cpu_count']} "
            f"cores ({machine['cpu_model']}), {machine['memory_gib']} GiB RAM, "
            f"{machine['system']}, Python {machine['python']}; load average at start {load}; "
            f"{'client and server pinned to CPUs 0 and 1' if machine['pinned'] else 'unpinned'}."
            f"\n\n{versions}.\n\n" + document["markdown"]
        )
    if (RESULTS_DIR / "e2e.png").exists():
        sections.insert(2, "![rows/s and client CPU per row by method](results/e2e.png)")
    return "\n\n".join(sections) + "\n"


def write_report(log: Log) -> None:
    e2e = read_results("e2e")
    if e2e is not None:
        from .chart import draw_e2e

        draw_e2e(e2e, CHART)
        log(f"drew {CHART}")
    RESULTS.write_text(assemble_results(), encoding="utf-8")
    log(f"wrote {RESULTS}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.pin = not args.no_pin and can_pin()
    log = Log()
    if args.report_only:
        write_report(log)
        return 0
    if args.pin:
        pin_to(CLIENT_CPU)  # the servers are started pinned to the other CPU
    print("\n".join(["## Machine", "", *machine_lines(args.pin)]), flush=True)
    args.before_round = lambda: wait_until_quiet(args.wait_quiet, log) if args.wait_quiet else 0
    for part in args.parts:
        args.before_round()
        pinned = args.pin and part not in UNPINNED_PARTS
        facts = machine_facts(pinned)  # the date and load as the part starts
        started = time.perf_counter()
        report = Report()
        RUNNERS[part](args, report, log)
        seconds = time.perf_counter() - started
        log(f"{part}: {seconds:.0f} s")
        if report.verdicts:
            print("\n".join(f"- {v}" for v in report.verdicts), flush=True)
        if not args.quick:
            report.figures["seconds"] = seconds
            path = write_results(
                part, report.figures, markdown=report.markdown(), pinned=pinned, facts=facts
            )
            log(f"wrote {path}")
    if not args.quick:
        write_report(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
