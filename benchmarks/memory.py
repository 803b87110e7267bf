"""Streaming memory: peak RSS of ``iter_detailed_report`` over 250 000 and 1 000 000 rows.

Each measurement runs in a fresh child process (``python -m benchmarks.memory
--child ...``), because ``ru_maxrss`` is a high-water mark: a process that
has once held a million rows never reports less again. The child imports the
client, works out the IDs (the simulator's dataset is deterministic, so it
knows them from the seed without asking), reads its RSS (the baseline), then
streams every row through ``iter_detailed_report`` counting them, and prints
its baseline and peak RSS as JSON.

With ``dedupe=False`` nothing grows with the input: the peak should not
depend on the number of rows. ``dedupe=True`` remembers every input ID and
every ``gsm_track_id`` yielded (by GSM track ID, one set serves both: an ID
read stands for its row once the row is yielded); the difference between the
two peaks is its cost, shown per million IDs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from organik_async import Progress

from ._common import (
    CLIENT_CPU,
    Log,
    SimulatorServer,
    max_rss_bytes,
    mib,
    peak_rss_bytes,
    pin_to,
    rss_bytes,
)

DEFAULT_SIZES = (250_000, 1_000_000)
ROOT = Path(__file__).resolve().parent.parent
KINDS = ("transaction_ids", "gsm_track_ids")


@dataclass(frozen=True, slots=True)
class MemoryCase:
    """One child run: the dataset size, which IDs are asked for, and ``dedupe``."""

    rows: int
    kind: str
    dedupe: bool


@dataclass(frozen=True, slots=True)
class MemoryResult:
    case: MemoryCase
    ids: int
    requests: int
    rows_seen: int
    seconds: float
    largest_batch: int
    """Rows of the largest response: the peak follows the largest responses in
    flight together, not the total."""
    baseline: int
    peak: int
    """``VmHWM``: the child's own high-water mark (see ``_common.peak_rss_bytes``)."""
    ru_maxrss: int
    """Reported for reference: it includes the parent's size at spawn."""


def cases_for(size: int, *, largest: bool) -> list[MemoryCase]:
    """Every size by transaction_ids (whole sends: the bulk case, whose responses
    vary from a few rows to thousands) and by gsm_track_ids (one ID per row: every
    response 250 rows), without dedupe; with dedupe at the largest size, where
    what it remembers is largest and easiest to tell from the peak's swings."""
    cases = [MemoryCase(size, kind, False) for kind in KINDS]
    if largest:
        cases += [MemoryCase(size, kind, True) for kind in KINDS]
    return cases


# --- the child ------------------------------------------------------------------------------


def _ids(rows: int, seed: int, kind: str) -> Iterable[int | str]:
    """The IDs to ask for: transaction IDs as a list (a few thousand), gsm_track_ids
    lazily (a million of them would otherwise sit in the baseline)."""
    from organik_async.testing import Dataset

    dataset = Dataset.generate(rows, seed=seed)
    if kind == "transaction_ids":
        return list(dataset.transaction_ids)
    return _counted(dataset.gsm_track_ids())


_id_count = 0


def _counted(ids: Iterator[int | str]) -> Iterator[int | str]:
    global _id_count
    for value in ids:
        _id_count += 1
        yield value


class _LargestBatch:
    """``on_progress`` callback: ``rows`` is cumulative, so a step is one batch."""

    def __init__(self) -> None:
        self.rows = 0
        self.largest = 0

    def __call__(self, progress: Progress) -> None:
        self.largest = max(self.largest, progress.rows - self.rows)
        self.rows = progress.rows


async def _stream(url: str, kind: str, ids: Iterable[int | str], dedupe: bool) -> tuple[int, int]:
    """Every row through ``iter_detailed_report``, counted; and the largest batch."""
    from organik_async import OrganikClient
    from organik_async.testing import DEMO_API_KEY

    count = 0
    largest = _LargestBatch()
    async with OrganikClient(DEMO_API_KEY, base_url=url) as client:
        stream = (
            client.iter_detailed_report(transaction_ids=ids, dedupe=dedupe, on_progress=largest)
            if kind == "transaction_ids"
            else client.iter_detailed_report(gsm_track_ids=ids, dedupe=dedupe, on_progress=largest)
        )
        async with stream as rows:
            async for _ in rows:
                count += 1
    return count, largest.largest


def child_main(args: argparse.Namespace) -> int:
    """Measure one case in this (fresh) process; print the figures as one JSON line."""
    import anyio

    from organik_async import BatchSizes

    if args.pin:
        pin_to(CLIENT_CPU)
    ids = _ids(args.rows, args.seed, args.kind)
    id_count = len(ids) if isinstance(ids, list) else None
    baseline = rss_bytes()
    started = time.perf_counter()
    rows, largest = anyio.run(_stream, args.url, args.kind, ids, args.dedupe, backend=args.backend)
    seconds = time.perf_counter() - started
    id_count = _id_count if id_count is None else id_count
    batch = BatchSizes().for_kind(args.kind)
    figures = {
        "ids": id_count,
        "requests": math.ceil(id_count / batch),
        "rows": rows,
        "largest_batch": largest,
        "seconds": seconds,
        "baseline": baseline,
        "peak": peak_rss_bytes(),
        "ru_maxrss": max_rss_bytes(),
    }
    print(json.dumps(figures), flush=True)
    return 0


# --- the parent -----------------------------------------------------------------------------


def _run_child(
    case: MemoryCase, server: SimulatorServer, *, pin: bool, backend: str
) -> MemoryResult:
    command = [
        sys.executable, "-m", "benchmarks.memory", "--child", "--url", server.url,
        "--rows", str(case.rows), "--seed", str(server.seed), "--kind", case.kind,
        "--backend", backend,
    ]  # fmt: skip
    command += ["--dedupe"] if case.dedupe else []
    command += ["--pin"] if pin else []
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed ({case}): {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["rows"] != case.rows:
        raise RuntimeError(f"expected {case.rows} rows, the child counted {figures['rows']}")
    return MemoryResult(
        case,
        figures["ids"],
        figures["requests"],
        figures["rows"],
        figures["seconds"],
        figures["largest_batch"],
        figures["baseline"],
        figures["peak"],
        figures["ru_maxrss"],
    )


def run_memory(sizes: Sequence[int], *, pin: bool, backend: str, log: Log) -> list[MemoryResult]:
    """One server per dataset size; one fresh child per case."""
    results: list[MemoryResult] = []
    for size in sizes:
        with SimulatorServer(size, pin=pin) as server:
            log(f"memory: {size:,}-row server up in {server.startup_seconds:.1f}s")
            for case in cases_for(size, largest=size == max(sizes)):
                result = _run_child(case, server, pin=pin, backend=backend)
                results.append(result)
                log(
                    f"  {case.kind:<15} dedupe={case.dedupe!s:<5} peak {mib(result.peak)} MiB "
                    f"(baseline {mib(result.baseline)}), {result.seconds:.1f}s"
                )
    return results


def parse_child_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description="One memory measurement (run by `python -m benchmarks`, not by hand).",
    )
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=KINDS, default="transaction_ids")
    parser.add_argument("--dedupe", action="store_true")
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(child_main(parse_child_args()))
