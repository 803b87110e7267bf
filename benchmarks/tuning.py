"""The client tuning itself: the adaptive limits, measured (``python -m benchmarks tuning``).

1. **Adaptive concurrency**: against the simulator with a cap of 6 requests in
   flight (``max_concurrent_requests=6``, code 93 beyond it), 100 000 rows by
   GSM track ID, 250 per request: ``max_concurrency=64`` left to the adaptive
   limit, against the same job with ``max_concurrency=6`` set by hand (and the
   limit off). Checked: every row, refusals under 5 % of requests, wall time
   within 1.3x of the hand-tuned job. Runs alternate between the two, and the
   ratio is taken from medians of the same run.
2. **Adaptive batch size**: against ``max_ids_per_request=37`` with a batch
   size of 250: every row, and refused requests per call fewer than
   ``2 * log2(250 / 37) + 2`` (7.5), on a fresh client and on the next call.

The simulator is served over real TCP by uvicorn in a thread of this process
(``organik_async.testing.serve``), so its counters (requests, refusals, IDs per
request) are read directly; server and client therefore share the GIL and
the 2 cores (the suite does not pin this part to one CPU), and wall times are
noisy: compare the ratios, and the CPU per row (``time.process_time`` covers
both, so it is reported for the run, not the client alone).
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Final

from organik_async import OrganikClient, Progress
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, serve

from ._common import Log

DEFAULT_ROWS: Final = 100_000
DEFAULT_PAIRS: Final = 3
"""Adaptive/hand-tuned pairs of runs (each pair in alternating order)."""
DEFAULT_LATENCY: Final = 0.01
SIZE_ROWS: Final = 20_000
"""The batch-size job: this many IDs, in two calls of half each."""
CAP: Final = 6
SIZE_LIMIT: Final = 37
BATCH: Final = 250


async def concurrency_run(
    dataset: Dataset, ids: list[int | str], *, adaptive: bool, latency: float
) -> dict[str, Any]:
    fake = FakeOrganikAPI(dataset, max_concurrent_requests=CAP, faults=[Fault.latency(latency)])
    seen: list[Progress] = []
    async with (
        serve(fake) as base_url,
        OrganikClient(
            DEMO_API_KEY,
            base_url=base_url,
            batch_sizes=BATCH,
            max_concurrency=64 if adaptive else CAP,
            adaptive_concurrency=adaptive,
            max_retries=10,
        ) as client,
    ):
        cpu, wall = time.process_time(), time.perf_counter()
        rows = await client.detailed_report(gsm_track_ids=ids, on_progress=seen.append)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    stats = fake.stats
    return {
        "adaptive": adaptive,
        "rows": len(rows),
        "every_row": len(rows) == len(ids),
        "wall_s": wall,
        "rows_per_s": len(rows) / wall,
        "cpu_us_per_row": cpu / len(rows) * 1e6,
        "requests": stats.requests,
        "refused": stats.refused,
        "refused_share": stats.refused / stats.requests,
        "peak_admitted": stats.peak_admitted,
        "lowest_limit": min(p.concurrency for p in seen),
        "final_limit": seen[-1].concurrency,
    }


async def size_run(dataset: Dataset, ids: list[int | str]) -> dict[str, Any]:
    fake = FakeOrganikAPI(dataset, max_ids_per_request=SIZE_LIMIT)
    calls: list[dict[str, Any]] = []
    async with (
        serve(fake) as base_url,
        OrganikClient(
            DEMO_API_KEY, base_url=base_url, batch_sizes=BATCH, max_concurrency=8
        ) as client,
    ):
        half = len(ids) // 2
        for part in (ids[:half], ids[half:]):
            before = fake.stats.ids_per_request.copy()
            refused_before = sum(n for size, n in before.items() if size > SIZE_LIMIT)
            rows = await client.detailed_report(gsm_track_ids=part)
            after = fake.stats.ids_per_request
            refused = sum(n for size, n in after.items() if size > SIZE_LIMIT)
            calls.append(
                {
                    "ids": len(part),
                    "every_row": len(rows) == len(part),
                    "refused_requests": refused - refused_before,
                    "requests": sum(after.values()) - sum(before.values()),
                }
            )
    return {
        "size_limit": SIZE_LIMIT,
        "batch": BATCH,
        "calls": calls,
        "largest_size_used": max(s for s in fake.stats.ids_per_request if s <= SIZE_LIMIT),
        "target_refusals_below": 2 * math.log2(BATCH / SIZE_LIMIT) + 2,
    }


async def run_tuning(rows: int, pairs: int, latency: float, log: Log) -> dict[str, Any]:
    """Both measurements; the figures the results file keeps."""
    dataset = Dataset.generate(rows, seed=1)
    dataset.warm()  # encode every row once, so no run pays the simulator's first encoding
    ids = list(dataset.gsm_track_ids())
    runs: list[dict[str, Any]] = []
    for pair in range(pairs):  # interleaved: host noise falls on both alike
        for adaptive in (True, False) if pair % 2 == 0 else (False, True):
            run = await concurrency_run(dataset, ids, adaptive=adaptive, latency=latency)
            runs.append(run)
            log(
                f"  adaptive={adaptive!s:5} {run['wall_s']:.2f} s, refused "
                f"{run['refused']}/{run['requests']}"
            )
    by = {flag: [r for r in runs if r["adaptive"] is flag] for flag in (True, False)}
    wall = {flag: statistics.median(r["wall_s"] for r in by[flag]) for flag in by}
    size_dataset = Dataset.generate(SIZE_ROWS, seed=2)
    size = await size_run(size_dataset, list(size_dataset.gsm_track_ids()))
    log(f"  batch size: settled on {size['largest_size_used']} IDs")
    return {
        "concurrency": {
            "cap": CAP,
            "batch": BATCH,
            "rows": rows,
            "latency_s": latency,
            "runs": runs,
            "median_wall_adaptive_s": wall[True],
            "median_wall_fixed_s": wall[False],
            "wall_ratio": wall[True] / wall[False],
            "max_refused_share": max(r["refused_share"] for r in by[True]),
            "every_row": all(r["every_row"] for r in runs),
        },
        "batch_size": size,
    }
