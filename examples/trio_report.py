"""The bulk query as a trio program: every row of many send tasks, summed up by status.

organik_async runs on trio through anyio: the same client and the same calls,
under ``trio.run``, with trio's own time budget (``trio.fail_after``) around
them. Runs against the simulator:

    python examples/trio_report.py --rows 20000
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import trio

from organik_async import BulkReportError, DeliveryStatus, Progress
from organik_async.testing import Dataset, FakeOrganikAPI, Fault


def status_name(status: DeliveryStatus | int) -> str:
    return status.name if isinstance(status, DeliveryStatus) else f"status {status}"


def show(progress: Progress) -> None:
    total = progress.batches_total or "?"
    print(
        f"\r{progress.batches_done}/{total} requests, {progress.rows} rows", end="", file=sys.stderr
    )


async def main(rows: int, seed: int) -> int:
    fake = FakeOrganikAPI(
        Dataset.generate(rows, seed=seed),
        faults=[Fault.latency((0.0, 0.02))],
        seed=seed,
    )
    transaction_ids = fake.dataset.transaction_ids
    async with fake.client(max_concurrency=8) as client:
        try:
            with trio.fail_after(60):  # the whole job's time budget
                report = await client.detailed_report(
                    transaction_ids=transaction_ids, on_progress=show
                )
        except BulkReportError as exc:  # some batches failed after their retries
            print(f"\n{len(exc.failures)} requests failed: {exc.failed_id_arguments}")
            return 2
    print(file=sys.stderr)
    print(
        f"{len(report)} rows for {len(transaction_ids)} transactions "
        f"in {fake.stats.requests} requests"
    )
    for name, count in sorted(Counter(status_name(r.delivery_status) for r in report).items()):
        print(f"{name}: {count}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A bulk report under trio, from the simulator.")
    parser.add_argument("--rows", type=int, default=20_000, help="rows the simulator holds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(trio.run(main, args.rows, args.seed))
