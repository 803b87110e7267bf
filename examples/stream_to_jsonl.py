"""Stream a large report to a JSON-lines file, in bounded memory, with progress.

Runs against the built-in simulator (no key needed):

    python examples/stream_to_jsonl.py report.jsonl

Against the real API, drop the simulator and use ``OrganikClient()`` with
``ORGANIK_API_KEY`` set.
"""

from __future__ import annotations

import sys

import anyio
import msgspec

from organik_async import BulkReportError, Progress
from organik_async.testing import Dataset, FakeOrganikAPI


def show(progress: Progress) -> None:
    total = progress.batches_total or "?"
    print(
        f"\r{progress.batches_done}/{total} batches, {progress.rows} rows", end="", file=sys.stderr
    )


async def main(path: str) -> None:
    fake = FakeOrganikAPI(Dataset.generate(50_000, seed=1))
    encoder = msgspec.json.Encoder()
    async with fake.client(max_concurrency=8) as client:
        with open(path, "wb") as out:  # noqa: ASYNC230 - a local file, written as rows arrive
            try:
                async with client.iter_detailed_report(
                    transaction_ids=fake.dataset.transaction_ids, dedupe=False, on_progress=show
                ) as rows:
                    async for row in rows:
                        out.write(encoder.encode(row) + b"\n")
            except BulkReportError as exc:
                print(f"\n{len(exc.failures)} batches failed: {exc.failed_id_arguments}")
    print(file=sys.stderr)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "report.jsonl")
