"""What ``dedupe`` keeps in memory: one entry per ID or row, not two.

A call of a million GSM track IDs used to hold two sets of a million: the IDs
read (each sent once) and the ``gsm_track_id`` values yielded (each row once).
Asked by GSM track ID, those are the same keys, and the engine now keeps them
once. These tests drive the bulk engine itself (its ``Fetch`` answered in
memory, no HTTP) and count what it remembers after a call: the memory figures
are the benchmark's (``python -m benchmarks memory``); this pins the design
they come from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import anyio
import pytest
from msgspec.structs import replace

from organik_async import BatchSizes, DetailedReport
from organik_async._bulk import (
    BulkOptions,
    BulkRun,
    Fetch,
    ReportStream,
    Rows,
    _Dedupe,
    check_sources,
)
from organik_async._models import Id, IdKind, IdSource
from organik_async.testing import Dataset

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(2_000, seed=5, max_transaction_rows=40)
ROW = next(iter(DATASET))


def provider(has_row: Callable[[Id], bool] = lambda _: True) -> Fetch:
    """Each GSM track ID that ``has_row`` answered with its row; each transaction with
    its rows, as the dataset has them."""

    async def fetch(
        ids: Mapping[IdKind, Sequence[Id]], on_attempt: Callable[[int, int], object], batch: int
    ) -> tuple[list[DetailedReport], int]:
        on_attempt(1, 0)
        tracks = ids.get("gsm_track_ids", ())
        rows = [replace(ROW, gsm_track_id=k) for k in tracks if has_row(k)]
        rows += DATASET.expected(transaction_ids=list(ids.get("transaction_ids", ())))
        return rows, 1

    return fetch


async def stream(
    sources: Mapping[IdKind, IdSource], fetch: Fetch | None = None
) -> tuple[int, _Dedupe]:
    sizes = BatchSizes(transaction_ids=20, gsm_track_ids=100)
    options = BulkOptions(batch_sizes=sizes, max_concurrency=4)
    run = BulkRun(fetch or provider(), check_sources(sources), options)
    count = 0
    with anyio.fail_after(10):
        async with ReportStream(lambda: run, lambda results: Rows(results, True)) as rows:
            async for _ in rows:
                count += 1
    assert run.dedupe is not None
    return count, run.dedupe


def sizes(dedupe: _Dedupe) -> tuple[int, int, int]:
    return len(dedupe.unanswered), len(dedupe.answered), len(dedupe.others)


async def test_a_call_by_gsm_track_id_remembers_each_id_once() -> None:
    ids = range(1, 5_001)
    count, dedupe = await stream({"gsm_track_ids": iter(ids)})
    assert count == 5_000
    assert sizes(dedupe) == (0, 5_000, 0)  # one set: the IDs read stand for the rows


async def test_a_call_by_transaction_id_remembers_each_row_once() -> None:
    tx = DATASET.transaction_ids[:30]
    count, dedupe = await stream({"transaction_ids": tx})
    assert count == len(DATASET.expected(transaction_ids=tx))
    assert sizes(dedupe) == (0, 0, count)
    assert len(dedupe.read["transaction_ids"]) == len(tx)


async def test_an_id_given_twice_or_in_two_forms_is_remembered_once() -> None:
    count, dedupe = await stream({"gsm_track_ids": [1, 2, "3", 3, 2]})
    assert count == 3
    assert sizes(dedupe) == (0, 3, 0)


async def test_ids_with_no_row_are_remembered_once_as_unanswered() -> None:
    ids = range(1, 1_001)
    count, dedupe = await stream({"gsm_track_ids": list(ids)}, provider(lambda k: k in ids[::2]))
    assert count == 500
    assert sizes(dedupe) == (500, 500, 0)
