"""``python -m benchmarks``: every benchmark of issue 4, as Markdown tables.

Runs, in order: the simulator alone (so it is shown not to be the
bottleneck), fan-out scaling with 100 ms of server latency (the ideal-time
check) and with none (CPU-bound rows/s), and streaming memory at 250 000 and
1 000 000 rows (with the cost of ``dedupe=True``). Then it checks the issue's
targets against the figures. Tables go to stdout and, for a full run, to
``benchmarks/RESULTS.md``; progress goes to stderr. A full run takes a few
minutes; ``--quick`` takes well under one and writes no results file.

``benchmarks/pool_scaling.py`` (raw httpx pool designs) is a separate script.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._common import (
    CLIENT_CPU,
    DISTURBED,
    Log,
    can_pin,
    machine_lines,
    pin_to,
    wait_until_quiet,
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

PARTS = ("simulator", "fanout", "memory")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
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
    """Everything measured, and the Markdown made of it."""

    sections: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.sections.append(text)
        print("\n" + text + "\n", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Fan-out scaling, streaming memory and simulator throughput over real TCP.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer, smaller points (~1 min)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--levels", help="max_concurrency levels (default 1,8,32,64,128)")
    parser.add_argument(
        "--repeat", type=int, help="timed calls per fan-out point (default 3; x3 when CPU-bound)"
    )
    parser.add_argument("--latency-ms", type=float, default=100.0, help="latency table's latency")
    parser.add_argument("--sizes", help="memory: dataset sizes (default 250000,1000000)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--no-pin", action="store_true", help="do not pin client and server")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to leave the CPUs idle",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"write the tables here (default {RESULTS.name} for a full run, none with --quick)",
    )
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    levels = args.levels or ("1,8,32" if args.quick else ",".join(map(str, DEFAULT_LEVELS)))
    args.level_list = tuple(int(v) for v in levels.split(","))
    args.repeat = args.repeat or (1 if args.quick else 3)
    sizes = args.sizes or ("50000,200000" if args.quick else ",".join(map(str, DEFAULT_SIZES)))
    args.size_list = tuple(int(v) for v in sizes.split(","))
    if args.output is None and not args.quick:
        args.output = RESULTS
    return args


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


def run_simulator(args: argparse.Namespace, report: Report, log: Log) -> None:
    rows = 100_000 if args.quick else 250_000
    shapes = [
        RawShape("gsm_track_ids", 20, 500 if args.quick else 3_000),
        RawShape("gsm_track_ids", 250, 128 if args.quick else 1_000),
        RawShape("transaction_ids", 20, None, passes=1 if args.quick else 5),
    ]
    concurrency = 8
    results = simulator_throughput(rows, shapes, concurrency=concurrency, pin=args.pin, log=log)
    report.add(simulator_table(results, rows, concurrency))


def run_fanout(args: argparse.Namespace, report: Report, log: Log) -> None:
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


def fanout_verdicts(scenario: Scenario, points: Sequence[Point]) -> list[str]:
    """The issue's two fan-out targets, judged on the default pool design."""
    default = {p.case.concurrency: p for p in points if p.case.default_pools}
    verdicts = []
    if scenario.latency > 0:
        for c, point in sorted(default.items()):
            if c > IDEAL_UP_TO:
                continue
            ideal = -(-point.case.batches // c) * scenario.latency
            ratio = point.wall / ideal
            verdicts.append(
                f"{_mark(ratio <= IDEAL_LIMIT)} {scenario.name}, C={c}: wall {point.wall:.2f}s "
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
                f"{_mark(ratio >= 1 - NO_DROP_TOLERANCE)} {scenario.name}, no drop 8 -> {c}: "
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


def memory_verdicts(results: Sequence[MemoryResult]) -> list[str]:
    """Flat (within 15 %) and under 150 MB without dedupe, for each kind of input."""
    verdicts = []
    for kind in KINDS:
        plain = sorted(
            (r for r in results if r.case.kind == kind and not r.case.dedupe),
            key=lambda r: r.case.rows,
        )
        verdicts += [_peak_verdict(r) for r in plain]
        if len(plain) >= 2:
            verdicts.append(_flat_verdict(plain[0], plain[-1]))
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
        f"{_mark(peak_mb < PEAK_LIMIT_MB)} memory, {result.case.rows:,} rows by "
        f"{result.case.kind}: peak RSS {peak_mb:.0f} MB (target < {PEAK_LIMIT_MB:.0f} MB)"
    )


def _flat_verdict(small: MemoryResult, large: MemoryResult) -> str:
    ratio = large.peak / small.peak
    return (
        f"{_mark(ratio <= 1 + FLAT_TOLERANCE)} memory flat by {small.case.kind}: peak at "
        f"{large.case.rows:,} rows = {ratio:.2f} x peak at {small.case.rows:,} "
        f"(target <= {1 + FLAT_TOLERANCE:.2f}; largest responses "
        f"{large.largest_batch:,} vs {small.largest_batch:,} rows)"
    )


def _mark(ok: bool) -> str:
    return "MET:" if ok else "NOT MET:"


def header(args: argparse.Namespace) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m benchmarks" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    lines = [
        "## Benchmark results",
        "",
        f"Measured {today} with `{command}` ({args.backend}).",
        "",
        *machine_lines(args.pin),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.pin = not args.no_pin and can_pin()
    if args.pin:
        pin_to(CLIENT_CPU)  # the servers are started pinned to the other CPU
    log = Log()
    wait_until_quiet(args.wait_quiet, log)
    started = time.perf_counter()
    report = Report()
    report.add(header(args))
    runners = {"simulator": run_simulator, "fanout": run_fanout, "memory": run_memory_part}
    for part in args.parts:
        runners[part](args, report, log)
    if report.verdicts:
        report.add("### Targets (issue 4)\n\n" + "\n".join(f"- {v}" for v in report.verdicts))
    report.add(f"Total benchmark time: {time.perf_counter() - started:.0f} s.")
    if args.output is not None:
        args.output.write_text("\n\n".join(report.sections) + "\n", encoding="utf-8")
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
