"""``python -m benchmarks.report``: the benchmark tables, made from the results files alone.

Each part of the suite writes ``benchmarks/results/<part>.json``: the machine, the
package versions, the command and the figures. This module turns each one into
``benchmarks/results/<part>.md``, the part's tables headed by the machine and versions
they were measured with, and draws ``benchmarks/results/e2e.svg`` from ``e2e.json``
(with matplotlib, the ``bench`` extra). A table is a function of its JSON and nothing
else (no clock, no installed version), so it can always be made again, and a test
(``tests/docs/test_benchmark_tables.py``) fails when one is out of date.

Those files are the one place the figures live: ``docs/performance.md`` includes them
(pymdownx.snippets), ``benchmarks/RESULTS.md`` links them. ``python -m benchmarks``
runs this after every run; ``--check`` only says which tables are out of date.
Importing it needs nothing beyond the package's own dependencies.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any, Final

from ._common import (
    DISTURBED,
    DISTURBED_NOTE,
    MIB,
    RESULTS_DIR,
    describe_machine,
    mark,
    markdown_table,
    mib,
    others_cell,
    percent,
    spread,
)

COMMAND: Final = "python -m benchmarks.report"
"""What makes the tables again; the stale-table test names it."""
CHART: Final = "e2e.svg"

Figures = Mapping[str, Any]
Point = Mapping[str, Any]


# --- decode -------------------------------------------------------------------------------


def decode_tables(figures: Figures) -> list[str]:
    decoders: list[Point] = figures["decoders"]
    lines = []
    summary = []
    for rows in sorted({d["rows"] for d in decoders}):
        these = [d for d in decoders if d["rows"] == rows]
        cost = {d["key"]: median(d["us_per_row"]) for d in these}
        for d in these:
            us = cost[d["key"]]
            lines.append(
                [
                    f"{rows:,}",
                    d["decoder"],
                    d["typed"],
                    f"{d['body_bytes'] / 1e6:.2f}",
                    f"{us:.3f}",
                    f"{spread(d['us_per_row']):.0%}",
                    f"{1e6 / us:,.0f}",
                    f"{us / cost['ours_json']:.2f} x",
                ]
            )
        limit = cost["ours_json"] / cost["msgspec"]
        summary.append(
            f"- {rows:,} rows: organik_async's JSON path takes {limit:.2f} x the CPU per row "
            "of a bare msgspec decoder. Its XML path takes "
            f"{cost['ours_xml'] / cost['ours_json']:.0f} x the JSON path's with xmltodict "
            f"({cost['ours_xml'] / cost['xmltodict']:.2f} x a bare `xmltodict.parse`) and "
            f"{cost['ours_xml_lxml'] / cost['ours_json']:.0f} x with lxml "
            f"({cost['ours_xml_lxml'] / cost['lxml']:.2f} x bare lxml; "
            f"{cost['ours_xml'] / cost['ours_xml_lxml']:.1f} x less than with xmltodict)."
        )
    rounds = {d["rows"]: len(d["us_per_row"]) for d in decoders}
    libxml2 = f" lxml's parser is libxml2 {figures['libxml2']}." if "libxml2" in figures else ""
    caption = (
        "Client CPU time per row to turn one whole answer (the simulator's own bytes) into "
        "rows; median of "
        + " or ".join(f"{n} rounds ({rows:,} rows)" for rows, n in sorted(rounds.items()))
        + ", the decoders taking turns; "
        "±: half the range of the rounds, relative to the median; rows/s: on one core, from "
        f"the CPU time.{libxml2}"
    )
    headers = [
        "rows", "decoder", "rows come out as", "body MB", "CPU µs/row", "±",
        "rows/s (one core)", "CPU vs organik_async JSON",
    ]  # fmt: skip
    return [caption, markdown_table(headers, lines), "\n".join(summary)]


# --- e2e ----------------------------------------------------------------------------------


def _rows_per_second(p: Point) -> float:
    return float(p["rows"] / median(p["walls"]))


def _us_per_row_each(p: Point) -> list[float]:
    return [c / p["rows"] * 1e6 for c in p["client_cpu"]]


def _us_per_row(p: Point) -> float:
    return median(_us_per_row_each(p))


def _share(p: Point, who: str) -> float:
    walls = sum(p["walls"])
    return sum(p[f"{who}_cpu"]) / walls if walls else 0.0


def _measured(p: Point) -> bool:
    return bool(p["walls"]) and not p["failure"]


E2E_REFERENCES: Final = (
    ("aiohttp_msgspec", "aiohttp + msgspec loop"),
    ("aiohttp_orjson", "aiohttp + orjson loop"),
    ("httpx_loop", "httpx loop"),
)
"""The hand-written loops every organik_async line is compared with, by method key."""


def e2e_tables(figures: Figures) -> list[str]:
    points: list[Point] = figures["points"]
    levels = sorted({p["concurrency"] for p in points})
    by = {(p["method"], p["concurrency"]): p for p in points}
    methods = list(dict.fromkeys(p["method"] for p in points))
    names = {p["method"]: p["name"] for p in points}
    summary = []
    for method in methods:
        cells = [names[method]]
        for c in levels:
            p = by.get((method, c))
            if p is None or not _measured(p):
                cells += ["failed" if p else "-", "-"]
                continue
            cells += [f"{_rows_per_second(p) / 1e3:,.0f} k", f"{_us_per_row(p):.2f}"]
        summary.append(cells)
    summary_headers = [""]
    for c in levels:
        summary_headers += [f"C={c} rows/s", "client CPU µs/row"]
    ratios = []
    for c in levels:
        for method in methods:
            ours = by.get((method, c))
            if not method.startswith("organik") or ours is None or not _measured(ours):
                continue
            cells = [names[method], str(c)]
            for key, _ in E2E_REFERENCES:
                ref = by.get((key, c))
                if ref is None or not _measured(ref):
                    cells += ["-", "-"]
                    continue
                cells += [
                    f"{_us_per_row(ours) / _us_per_row(ref):.2f} x",
                    f"{_rows_per_second(ours) / _rows_per_second(ref):.2f} x",
                ]
            ratios.append(cells)
    ratio_headers = ["organik_async", "C"]
    for _, label in E2E_REFERENCES:
        ratio_headers += [f"CPU/row vs {label}", f"rows/s vs {label}"]
    detail = [
        [
            p["name"],
            str(p["concurrency"]),
            f"{_rows_per_second(p):,.0f}",
            f"{spread([p['rows'] / w for w in p['walls']]):.0%}",
            f"{_us_per_row(p):.2f}",
            f"{spread(_us_per_row_each(p)):.0%}",
            str(len(p["walls"])),
            percent(_share(p, "client")),
            percent(_share(p, "server")),
            others_cell(_share(p, "others")),
        ]
        for p in points
        if p["walls"]
    ]
    detail_headers = [
        "method", "C", "rows/s", "±", "client CPU µs/row", "±", "timed calls",
        "client CPU", "server CPU", "others' CPU",
    ]  # fmt: skip
    blocks = [
        f"{figures['rows']:,} rows by GSM track ID, {figures['batch']} per request, C requests "
        "in flight, every row decoded into one list; the simulator in its own process. "
        f"rows/s: median of {figures['rounds']} timed calls (wall clock); client CPU µs/row: "
        "median of the same calls' CPU time in the client's process, per row. The methods "
        "take turns, round after round, and every timed call received every row.",
        markdown_table(summary_headers, summary),
        "Each organik_async line against each hand-written loop, as ratios of the medians "
        "above (CPU per row: lower is better; rows/s: higher is better):",
        markdown_table(ratio_headers, ratios),
        "Every timed call (±: half the range, relative to the median; CPU columns: share of "
        "one core during the timed calls):",
        markdown_table(detail_headers, detail),
    ]
    if any(_share(p, "others") > DISTURBED for p in points if p["walls"]):
        blocks.append(DISTURBED_NOTE)
    blocks += [
        f"{p['name']}, C={p['concurrency']} failed: {p['failure']}" for p in points if p["failure"]
    ]
    return blocks


# --- overhead -----------------------------------------------------------------------------


def overhead_tables(figures: Figures) -> list[str]:
    points: list[Point] = figures["points"]

    def each(p: Point) -> list[float]:
        return [c / p["requests"] * 1e6 for c in p["client_cpu"]]

    base = next((p for p in points if p["method"] == "httpx_post" and p["client_cpu"]), None)
    lines = []
    for p in points:
        if not p["client_cpu"]:
            lines.append([p["name"], "failed", "", "", "", ""])
            continue
        us = median(each(p))
        walls = sum(p["walls"])
        lines.append(
            [
                p["name"],
                f"{us:,.0f}",
                f"{spread(each(p)):.0%}",
                f"{us / median(each(base)):.2f} x" if base else "-",
                f"{median([w / p['requests'] * 1e6 for w in p['walls']]):,.0f}",
                others_cell(sum(p["others_cpu"]) / walls if walls else 0.0),
            ]
        )
    rounds = max((len(p["client_cpu"]) for p in points), default=0)
    headers = [
        "method", "client CPU µs/request", "±", "CPU vs bare httpx post", "wall µs/request",
        "others' CPU",
    ]  # fmt: skip
    return [
        f"{figures['requests']:,} requests in sequence, one ID each (one-row answers), over "
        "one kept-alive connection. Client CPU time per request (the client's process), "
        f"median of {rounds} timed runs, the methods taking turns; ±: half the range, "
        "relative to the median; wall µs/request includes the server's time.",
        markdown_table(headers, lines),
    ]


# --- simulator ----------------------------------------------------------------------------


def simulator_tables(figures: Figures) -> list[str]:
    lines = []
    disturbed = False
    for r in figures["shapes"]:
        usage, shape = r["usage"], r["shape"]
        wall, server = usage["wall"], usage["server"]
        disturbed |= usage["others"] / wall > DISTURBED
        lines.append(
            [
                f"{shape['kind']} x {shape['batch_size']}",
                f"{r['requests']:,}",
                f"{r['rows']:,}",
                f"{r['body_bytes'] / 1e6:,.0f}",
                f"{wall:.2f}",
                f"{r['rows'] / wall:,.0f}",
                f"{r['requests'] / wall:,.0f}",
                percent(server / wall),
                f"{server / r['rows'] * 1e6:.2f}",
                f"{server / r['requests'] * 1e6:,.0f}",
                others_cell(usage["others"] / wall),
            ]
        )
    headers = [
        "request shape", "requests", "rows", "MB", "wall s", "rows/s", "req/s", "server CPU",
        "server CPU µs/row", "server CPU µs/request", "others' CPU",
    ]  # fmt: skip
    blocks = [
        f"The simulator's process serving a {figures['rows']:,}-row dataset, no added latency, "
        f"to a raw httpx client ({figures['concurrency']} requests in flight on one pool) that "
        "counts the rows in the answers' bytes without decoding them. server CPU: its share "
        "of one core; server CPU µs/row: what serving a row costs its one core.",
        markdown_table(headers, lines),
    ]
    return blocks + ([DISTURBED_NOTE] if disturbed else [])


# --- fanout -------------------------------------------------------------------------------

IDEAL_LIMIT: Final = 1.2
"""Latency-bound: the wall time within this multiple of the ideal..."""
IDEAL_UP_TO: Final = 64
"""...up to this many requests in flight."""
NO_DROP_TOLERANCE: Final = 0.05
"""rows/s at C > 8 counts as "no drop" if within 5 % of C=8's. Wall times on a shared
machine can swing far more (the tables' ± column), so each check also gives the ratio
of client CPU per row, which such swings do not move."""


def _fanout_share(p: Point, who: str) -> float:
    wall = sum(u["wall"] for u in p["usages"])
    return sum(u[who] for u in p["usages"]) / wall if wall else 0.0


def _fanout_us_per_row(p: Point) -> float:
    rows = p["rows_per_call"] * len(p["usages"])
    return sum(u["client"] for u in p["usages"]) / rows * 1e6 if rows else math.nan


def _wall(p: Point) -> float:
    return median(p["walls"]) if p["walls"] else math.nan


def _fanout_table(table: Figures) -> list[str]:
    scenario, points = table["scenario"], table["points"]
    default = scenario["default_pool_size"]
    latency = scenario["latency"]
    headers = ["C", "httpx pools", "requests", "rows", "wall s", "±", "rows/s", "req/s"]
    if latency > 0:
        headers += ["ideal s", "wall/ideal"]
    headers += ["retries", "client CPU", "client CPU µs/row", "server CPU", "others' CPU"]
    lines = []
    for p in points:
        case = p["case"]
        c, size = case["concurrency"], case["pool_size"]
        label = f"{p['pools'] or '?'} x {size}"
        label += " (default)" if size == default else " (one big pool)" if size == c else ""
        wall = _wall(p)
        cells = [
            str(c),
            label,
            f"{case['batches']:,}",
            f"{p['rows_per_call']:,}",
            f"{wall:.2f}",
            f"{spread(p['walls']):.0%}",
            f"{p['rows_per_call'] / wall:,.0f}",
            f"{case['batches'] / wall:,.0f}",
        ]
        if latency > 0:
            ideal = math.ceil(case["batches"] / c) * latency
            cells += [f"{ideal:.2f}", f"{wall / ideal:.2f}"]
        cells += [
            f"{p['retries']:,}" + (" ‡" if p["failure"] else ""),
            percent(_fanout_share(p, "client")),
            f"{_fanout_us_per_row(p):.2f}",
            percent(_fanout_share(p, "server")),
            others_cell(_fanout_share(p, "others")),
        ]
        lines.append(cells)
    blocks = [
        f"**{scenario['name']}**: server latency {latency * 1000:g} ms, "
        f"{scenario['batch_size']} gsm_track_ids (= rows) per request; wall s: median of "
        f"{table['repeat']} timed calls.",
        markdown_table(headers, lines),
    ]
    if any(_fanout_share(p, "others") > DISTURBED for p in points):
        blocks.append(DISTURBED_NOTE)
    for p in points:
        if p["failure"]:
            blocks.append(
                f"‡ C={p['case']['concurrency']}, pool_size={p['case']['pool_size']}: a call "
                f"failed after its retries; the figures are from the calls before it: "
                f"{p['failure']}"
            )
    if table.get("server_rows") is not None:
        blocks.append(
            f"The server counted {table['server_requests']:,} requests and "
            f"{table['server_rows']:,} rows (warm-ups included)."
        )
    return blocks


def fanout_checks(table: Figures) -> list[str]:
    """Latency-bound: wall time near the ideal; both: no drop in rows/s from C=8 up."""
    scenario = table["scenario"]
    name, latency = scenario["name"], scenario["latency"]
    default = {
        p["case"]["concurrency"]: p
        for p in table["points"]
        if p["case"]["pool_size"] == scenario["default_pool_size"] and p["walls"]
    }
    checks = []
    if latency > 0:
        for c, p in sorted(default.items()):
            if c > IDEAL_UP_TO:
                continue
            ideal = math.ceil(p["case"]["batches"] / c) * latency
            ratio = _wall(p) / ideal
            checks.append(
                f"{mark(ratio <= IDEAL_LIMIT)} {name}, C={c}: wall {_wall(p):.2f} s = "
                f"{ratio:.2f} x the ideal {ideal:.2f} s (at most {IDEAL_LIMIT})" + _disturbed(p)
            )
    base = default.get(8)
    if base is not None:
        for c, p in sorted(default.items()):
            if c <= 8:
                continue
            ratio = (p["rows_per_call"] / _wall(p)) / (base["rows_per_call"] / _wall(base))
            cpu = _fanout_us_per_row(p) / _fanout_us_per_row(base)
            checks.append(
                f"{mark(ratio >= 1 - NO_DROP_TOLERANCE)} {name}, no drop from C=8 to C={c}: "
                f"rows/s {ratio:.2f} x (at least {1 - NO_DROP_TOLERANCE:.2f}; walls "
                f"±{spread(p['walls']):.0%} / ±{spread(base['walls']):.0%}); client CPU per "
                f"row {cpu:.2f} x" + _disturbed(p, base)
            )
    return checks


def _disturbed(*points: Point) -> str:
    if any(_fanout_share(p, "others") > DISTURBED for p in points):
        return " (†: disturbed by other processes, see the table)"
    return ""


def fanout_tables(figures: Figures) -> list[str]:
    blocks = [
        'Each point: a bulk call on a freshly opened client (`http_backend="httpx"`, whose '
        "pools are compared), after an untimed warm-up call that opens its connections; the "
        "cases take turns, round after round. ±: half the range of the walls, relative to "
        "the median; retries: requests retried (the client's default policy); CPU columns: "
        "share of one core during the timed calls (others' CPU: every other process on the "
        "machine)."
    ]
    checks = []
    for table in figures["scenarios"]:
        blocks += _fanout_table(table)
        checks += fanout_checks(table)
    return [*blocks, _checks(checks)]


def _checks(lines: Sequence[str]) -> str:
    return "Checks:\n\n" + "\n".join(f"- {line}" for line in lines)


# --- memory -------------------------------------------------------------------------------

PEAK_LIMIT_MB: Final = 150.0
FLAT_TOLERANCE: Final = 0.15
MEMORY_KINDS: Final = ("transaction_ids", "gsm_track_ids")


def dedupe_costs(results: Sequence[Point]) -> list[tuple[Point, float]]:
    """MiB per million rows (or IDs) that ``dedupe=True`` adds to the peak, measured at
    the largest size only: the difference of two peaks is the sets' size only when
    they dwarf the batch-to-batch swings of the peak."""
    largest = max((r["case"]["rows"] for r in results), default=0)
    without = {
        r["case"]["kind"]: r
        for r in results
        if not r["case"]["dedupe"] and r["case"]["rows"] == largest
    }
    costs = []
    for r in results:
        case = r["case"]
        if case["dedupe"] and case["rows"] == largest and case["kind"] in without:
            extra = (r["peak"] - without[case["kind"]]["peak"]) / MIB
            costs.append((case, extra / (case["rows"] / 1e6)))
    return costs


def memory_checks(results: Sequence[Point]) -> list[str]:
    """Under 150 MB, and flat (within 15 %) without dedupe, for each kind of input."""

    def peak(r: Point) -> str:
        mb = r["peak"] / 1e6
        return (
            f"{mark(mb < PEAK_LIMIT_MB)} {r['case']['rows']:,} rows by {r['case']['kind']}"
            f"{', dedupe=True' if r['case']['dedupe'] else ''}: peak RSS {mb:.0f} MB (under "
            f"{PEAK_LIMIT_MB:.0f} MB)"
        )

    checks = []
    for kind in MEMORY_KINDS:
        plain = sorted(
            (r for r in results if r["case"]["kind"] == kind and not r["case"]["dedupe"]),
            key=lambda r: r["case"]["rows"],
        )
        checks += [peak(r) for r in plain]
        if len(plain) >= 2:
            small, large = plain[0], plain[-1]
            ratio = large["peak"] / small["peak"]
            checks.append(
                f"{mark(ratio <= 1 + FLAT_TOLERANCE)} flat by {kind}: the peak at "
                f"{large['case']['rows']:,} rows is {ratio:.2f} x the peak at "
                f"{small['case']['rows']:,} (at most {1 + FLAT_TOLERANCE:.2f}; largest "
                f"responses {large['largest_batch']:,} and {small['largest_batch']:,} rows)"
            )
        checks += [peak(r) for r in results if r["case"]["kind"] == kind and r["case"]["dedupe"]]
    return checks


def memory_tables(figures: Figures) -> list[str]:
    results: list[Point] = figures["results"]
    lines = [
        [
            f"{r['rows_seen']:,}",
            r["case"]["kind"],
            f"{r['ids']:,}",
            str(r["case"]["dedupe"]),
            f"{r['requests']:,}",
            f"{r['largest_batch']:,}",
            f"{r['seconds']:.1f}",
            f"{r['rows_seen'] / r['seconds']:,.0f}",
            mib(r["baseline"]),
            mib(r["peak"]),
            mib(r["peak"] - r["baseline"]),
            mib(r["ru_maxrss"]),
        ]
        for r in results
    ]
    headers = [
        "rows", "asked by", "IDs", "dedupe", "requests", "largest response rows", "wall s",
        "rows/s", "RSS before MiB", "peak RSS MiB", "peak - before MiB", "ru_maxrss MiB",
    ]  # fmt: skip
    costs = [
        [
            f"{case['rows']:,}",
            case["kind"],
            "per million rows (the set of gsm_track_ids yielded)"
            if case["kind"] == "transaction_ids"
            else "per million IDs (the set of IDs sent, which stands for the rows yielded too)",
            f"{per_million:,.0f}",
        ]
        for case, per_million in dedupe_costs(results)
    ]
    return [
        "`iter_detailed_report` with the client's defaults, every row counted and dropped, "
        "each row of the table a fresh child process. *RSS before*: after imports and "
        "setup, just before the call; *peak RSS*: the child's `VmHWM` after it. `ru_maxrss` "
        "is for reference only: Linux carries the parent's resident size over fork/exec into "
        "a child's `ru_maxrss`. The processes' CPU time is not measured here (wall s only).",
        markdown_table(headers, lines),
        "What `dedupe=True` adds to the peak (peak with it minus peak without, same rows, "
        "scaled to a million; measured at the largest size only):",
        markdown_table(["rows", "asked by", "cost", "MiB"], costs),
        _checks(memory_checks(results)),
    ]


# --- tuning -------------------------------------------------------------------------------

WALL_RATIO_LIMIT: Final = 1.3
REFUSED_SHARE_LIMIT: Final = 0.05


def tuning_checks(figures: Figures) -> list[str]:
    c, s = figures["concurrency"], figures["batch_size"]
    checks = [
        f"{mark(c['wall_ratio'] <= WALL_RATIO_LIMIT)} adaptive concurrency: median wall "
        f"{c['wall_ratio']:.2f} x the hand-tuned job's (at most {WALL_RATIO_LIMIT})",
        f"{mark(c['max_refused_share'] < REFUSED_SHARE_LIMIT)} adaptive concurrency: refusals "
        f"at most {c['max_refused_share']:.1%} of requests (under {REFUSED_SHARE_LIMIT:.0%})",
        f"{mark(c['every_row'])} adaptive concurrency: every run received every row",
    ]
    for n, call in enumerate(s["calls"], 1):
        which = "first call (fresh client)" if n == 1 else "next call"
        ok = call["refused_requests"] < s["target_refusals_below"] and call["every_row"]
        checks.append(
            f"{mark(ok)} adaptive batch size, {which}: {call['refused_requests']} refused "
            f"requests (fewer than {s['target_refusals_below']:.1f}), every row: "
            f"{call['every_row']}"
        )
    return checks


TUNING_HEADERS: Final = (
    "client", "median wall s", "rows/s (median)", "CPU µs/row (median)",
    "refused / requests (worst run)", "lowest limit",
)  # fmt: skip


def tuning_tables(figures: Figures) -> list[str]:
    c, s = figures["concurrency"], figures["batch_size"]
    lines = []
    for adaptive in (True, False):
        runs = [r for r in c["runs"] if r["adaptive"] is adaptive]
        worst = max(runs, key=lambda r: r["refused_share"])
        lines.append(
            [
                "max_concurrency=64, adaptive" if adaptive else f"max_concurrency={c['cap']}",
                f"{median(r['wall_s'] for r in runs):.2f}",
                f"{median(r['rows_per_s'] for r in runs):,.0f}",
                f"{median(r['cpu_us_per_row'] for r in runs):.2f}",
                f"{worst['refused']} / {worst['requests']} ({worst['refused_share']:.1%})",
                str(min(r["lowest_limit"] for r in runs)),
            ]
        )
    calls = [
        [
            "first (fresh client)" if n == 1 else "next",
            f"{call['ids']:,}",
            str(call["requests"]),
            str(call["refused_requests"]),
            str(call["every_row"]),
        ]
        for n, call in enumerate(s["calls"], 1)
    ]
    return [
        f"**Adaptive concurrency**: the simulator refuses more than {c['cap']} requests in "
        f"flight; {c['rows']:,} rows by GSM track ID, {c['batch']} per request, "
        f"{c['latency_s'] * 1000:g} ms latency; {len(c['runs'])} runs, interleaved. The "
        "simulator runs in a thread of the benchmark's process, unpinned, so wall times are "
        "noisy and the ratio of the medians is what counts; CPU µs/row is the process's "
        "(client and server together).",
        markdown_table(TUNING_HEADERS, lines),
        f"**Adaptive batch size**: the simulator refuses more than {s['size_limit']} IDs per "
        f"request, the client's batch size is {s['batch']}; the size it settled on: "
        f"{s['largest_size_used']} IDs.",
        markdown_table(["call", "IDs", "requests", "refused", "every row"], calls),
        _checks(tuning_checks(figures)),
    ]


# --- percall ------------------------------------------------------------------------------


def percall_tables(figures: Figures) -> list[str]:
    def cell(values: Sequence[float]) -> str:
        return f"{median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"

    lines = []
    for b in figures["backends"]:
        layers = b["layers"]
        bare, fetch, call = (median(layers[k]) for k in ("bare", "fetch", "call"))
        lines.append(
            [
                f"`{b['backend']}`",
                cell(layers["bare"]),
                cell(layers["fetch"]),
                cell(layers["call"]),
                f"{fetch - bare:,.0f}",
                f"{call - fetch:,.0f}",
                others_cell(b["others_share"]),
            ]
        )
    headers = [
        "http_backend", "bare aiohttp post", "request path", "whole call",
        "request path - bare", "engine (call - request path)", "others' CPU",
    ]  # fmt: skip
    return [
        f"Client CPU µs per one-ID call: median (and range) of {figures['rounds']} rounds of "
        f"{figures['calls']:,} calls, the layers taking turns. *bare aiohttp post*: "
        "`aiohttp.ClientSession.post` of the same body, bytes read; *request path*: the "
        "client's request path alone (throttles, send, read, decode, errors); *whole call*: "
        "`detailed_report(gsm_track_ids=[one_id])`.",
        markdown_table(headers, lines),
    ]


# --- shared ------------------------------------------------------------------------------

SHARED_REFUSED_LIMIT: Final = 0.02
SHARED_WALL_LIMIT: Final = 1.25
SHARED_THROUGHPUT_LIMIT: Final = 0.9
INDEPENDENT_WALL_LIMIT: Final = 2.0


def _refused_share(point: Mapping[str, Any]) -> float:
    requests: int = point["requests"]
    return point["refused"] / requests if requests else 0.0


def shared_checks(figures: Figures) -> list[str]:
    points = figures["processes"]
    base = next(p for p in points if p["fixed"])
    checks = []
    for p in points:
        if p["fixed"]:
            continue
        ratio = p["wall_s"] / base["wall_s"]
        if p["shared"]:
            ok = (
                p["failed_ids"] == 0
                and _refused_share(p) < SHARED_REFUSED_LIMIT
                and ratio <= SHARED_WALL_LIMIT
            )
            checks.append(
                f"{mark(ok)} {p['processes']} processes sharing Redis: {p['failed_ids']} IDs "
                f"failed, {_refused_share(p):.1%} refused (under {SHARED_REFUSED_LIMIT:.0%}), "
                f"wall {ratio:.2f} x one process at max_concurrency={figures['cap']} (at most "
                f"{SHARED_WALL_LIMIT})"
            )
        else:
            ok = p["failed_ids"] == 0 and ratio <= INDEPENDENT_WALL_LIMIT
            checks.append(
                f"{mark(ok)} {p['processes']} independent processes: {p['failed_ids']} IDs "
                f"failed (none), wall {ratio:.2f} x one process at "
                f"max_concurrency={figures['cap']} (at most {INDEPENDENT_WALL_LIMIT})"
            )
    ratio = figures["uncapped"]["ratio"]
    checks.append(
        f"{mark(ratio >= SHARED_THROUGHPUT_LIMIT)} one process with shared_limits keeps "
        f"{ratio:.2f} x the rows/s it has without (at least {SHARED_THROUGHPUT_LIMIT})"
    )
    return checks


def shared_tables(figures: Figures) -> list[str]:
    points = figures["processes"]
    base = next(p for p in points if p["fixed"])

    def limits(p: Mapping[str, Any]) -> str:
        if p["fixed"]:
            return f"max_concurrency={figures['cap']} by hand"
        return "shared (Redis)" if p["shared"] else "each its own"

    lines = [
        [
            str(p["processes"]),
            limits(p),
            f"{p['failed_ids']:,} ({p['failed_ids'] / p['ids']:.1%})",
            f"{p['processes_failed']} of {p['processes']}",
            f"{p['refused']:,} of {p['requests']:,} ({_refused_share(p):.1%})",
            f"{p['wall_s']:.2f}",
            f"{p['wall_s'] / base['wall_s']:.2f}",
        ]
        for p in points
    ]
    cost = figures["cost"]
    costs = [
        [label, f"{cost[key]['cpu_us']:.0f}", f"{cost[key]['wall_us']:.0f}"]
        for label, key in (
            ("local adaptive limit", "local"),
            ("shared, a lease from Redis each time", "shared"),
            ("shared, the lease kept (no one waits)", "shared_kept"),
        )
    ]
    free = figures["uncapped"]
    return [
        f"**Many processes, one account**: the simulator refuses more than {figures['cap']} "
        f"requests in flight; {figures['rows']:,} rows split over the processes, "
        f"{figures['batch']} IDs a request, latency {figures['latency']} s, default settings "
        "(each its own limits, or all sharing one budget through Redis on 127.0.0.1). "
        f"Every case ran {base.get('rounds', 1)} times, the cases taking turns: wall time is "
        "the median (from a common start, the processes already running), IDs and "
        "requests are those of every run, and processes with failures the most in one run.",
        markdown_table(
            [
                "processes",
                "limits",
                "IDs failed",
                "processes with failures",
                "refused",
                "wall s",
                "x one by hand",
            ],
            lines,
        ),
        "**Redis's cost per request**, one process, client CPU and wall time:",
        markdown_table(["", "CPU µs per request", "wall µs per request"], costs),
        f"**One process, no cap**: {free['rows']:,} rows; {free['plain_rows_per_s']:,.0f} "
        f"rows/s without shared limits, {free['shared_rows_per_s']:,.0f} with "
        f"({free['ratio']:.2f} x; medians of {free['rounds']}).",
        _checks(shared_checks(figures)),
    ]


# --- every part ---------------------------------------------------------------------------

TABLES: Final[dict[str, Callable[[Figures], list[str]]]] = {
    "decode": decode_tables,
    "e2e": e2e_tables,
    "overhead": overhead_tables,
    "simulator": simulator_tables,
    "fanout": fanout_tables,
    "memory": memory_tables,
    "tuning": tuning_tables,
    "percall": percall_tables,
    "shared": shared_tables,
}
"""How each part's figures become Markdown, by part."""


def render(document: Mapping[str, Any], *, note: bool = True) -> str:
    """One results file's Markdown: the machine and versions, then the part's tables;
    ``note``: first a comment saying where the text comes from."""
    part = document["part"]
    if part not in TABLES:
        raise ValueError(f"no tables for part {part!r}: add them to benchmarks/report.py")
    blocks = [" ".join(describe_machine(document["machine"])), *TABLES[part](document["figures"])]
    if note:
        blocks.insert(
            0, f"<!-- Made by `{COMMAND}` from benchmarks/results/{part}.json: edit that. -->"
        )
    return "\n\n".join(blocks) + "\n"


def expected(results: Path = RESULTS_DIR) -> dict[Path, str]:
    """Every table file ``results`` should hold, and its text."""
    return {
        path.with_suffix(".md"): render(json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(results.glob("*.json"))
    }


def stale(results: Path = RESULTS_DIR) -> list[Path]:
    """The table files that are missing or out of date with their results files."""
    return [
        path
        for path, text in expected(results).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def write(results: Path = RESULTS_DIR, *, chart: bool = True) -> list[Path]:
    """Make every table again, and with ``chart`` the e2e chart (if matplotlib is
    installed); returns the files written."""
    written = []
    for path, text in expected(results).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    e2e = results / "e2e.json"
    if chart and e2e.exists():
        try:
            from .chart import draw_e2e
        except ImportError:  # matplotlib is in the bench extra only
            print(f"{CHART} not drawn: matplotlib is not installed", file=sys.stderr)
        else:
            drawn = results / CHART
            before = drawn.read_bytes() if drawn.exists() else b""
            draw_e2e(json.loads(e2e.read_text(encoding="utf-8")), drawn)
            if drawn.read_bytes() != before:
                written.append(drawn)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Make the benchmark tables from benchmarks/results/*.json."
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a table is out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        if out_of_date := stale():
            for path in out_of_date:
                print(f"{path} is out of date with its results file", file=sys.stderr)
            print(f"run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    for path in write():
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
