"""The end-to-end chart: rows/s and client CPU per row by method, from ``results/e2e.json``.

Drawn by matplotlib (headless) from the results file alone, as an SVG whose text is
text and whose bytes depend on nothing but the figures (no date, fixed element ids),
so drawing it again from the same file changes nothing. It is written without an XML
prolog, so the performance page can include it inline; ``python -m benchmarks.report``
draws it.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from statistics import median
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after choosing the backend

matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: small and searchable
matplotlib.rcParams["svg.hashsalt"] = "organik_async"  # element ids that do not change

SHORT_NAMES = {
    "organik": "organik_async\n(defaults)",
    "organik_httpx": "organik_async\n(httpx backend)",
    "organik_aiohttp": "organik_async\n+ httpx-aiohttp",
    "httpx_loop": "httpx loop\n+ json.loads",
    "aiohttp_orjson": "aiohttp loop\n+ orjson",
    "aiohttp_msgspec": "aiohttp loop\n+ msgspec Structs",
}
"""Tick labels by method key; a method not named here is labelled by its key."""
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")


def _bars(axis: Any, points: list[dict[str, Any]], each: str, scale: float, title: str) -> None:
    methods = list(dict.fromkeys(p["method"] for p in points))
    levels = sorted({p["concurrency"] for p in points})
    width = 0.8 / len(levels)
    by = {(p["method"], p["concurrency"]): p for p in points}
    for n, level in enumerate(levels):
        xs, heights, low, high = [], [], [], []
        for i, method in enumerate(methods):
            point = by.get((method, level))
            if point is None or not point["walls"]:
                continue
            values = _each(point, each)
            middle = median(values) * scale  # as the tables take it
            xs.append(i + (n - (len(levels) - 1) / 2) * width)
            heights.append(middle)
            low.append(middle - min(values) * scale)
            high.append(max(values) * scale - middle)
        axis.bar(
            xs,
            heights,
            width,
            yerr=[low, high],
            capsize=3,
            label=f"{level} in flight",
            color=COLOURS[n % len(COLOURS)],
        )
        for x, height in zip(xs, heights, strict=True):
            axis.annotate(
                f"{height:,.0f}" if height >= 10 else f"{height:.1f}",
                (x, 0),
                textcoords="offset points",
                xytext=(0, 4),
                ha="center",
                fontsize=7,
                color="white",
                fontweight="bold",
            )
    axis.set_xticks(range(len(methods)), [SHORT_NAMES.get(m, m) for m in methods], fontsize=8)
    axis.set_title(title, fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)


def _each(point: dict[str, Any], each: str) -> list[float]:
    rows = point["rows"]
    if each == "rows_per_second":
        return [rows / w for w in point["walls"]]
    return [c / rows * 1e6 for c in point["client_cpu"]]


def draw_e2e(document: dict[str, Any], path: Path) -> None:
    """Two panels: rows/s (higher is better) and client CPU µs/row (lower is better)."""
    figures = document["figures"]
    points: list[dict[str, Any]] = figures["points"]
    machine = document["machine"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    _bars(
        left,
        points,
        "rows_per_second",
        1e-3,
        "rows/s, thousands (higher is better)",
    )
    _bars(
        right,
        points,
        "client_us_per_row",
        1.0,
        "client CPU µs per row (lower is better)",
    )
    others = max((p["others_share"] for p in points), default=0.0)
    fig.suptitle(
        f"{figures['rows']:,} rows by GSM track ID, {figures['batch']} per request, over TCP; "
        f"median of {figures['rounds']} interleaved runs, bars: min–max; "
        f"{machine['cpu_count']} cores"
        + (", client and server on one each" if machine["pinned"] else "")
        + f" ({machine['date'][:10]})"
        + (f"; other processes used up to {others:.0%} of a core" if others > 0.2 else ""),
        fontsize=9,
    )
    fig.tight_layout()
    svg = io.StringIO()
    fig.savefig(svg, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = svg.getvalue()
    text = text[text.index("<svg") :]  # no XML prolog: the page includes it inline
    # No fixed size: the viewBox keeps the proportions, the page's width sets the size.
    text = re.sub(r'^(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", text, count=1)
    path.write_text(text, encoding="utf-8")
