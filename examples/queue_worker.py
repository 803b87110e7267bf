"""A long-lived asyncio worker: one shared client, a rate limit, failures retried later.

Jobs (lists of transaction IDs) arrive on a queue; each is answered with its
rows. A job whose requests fail after the client's own retries is put back
once, with only the IDs that failed. Runs against the simulator, with a
provider that fails now and then:

    python examples/queue_worker.py
"""

from __future__ import annotations

import asyncio

from organik_async import BulkReportError, OrganikClient, OrganikError
from organik_async.testing import Dataset, FakeOrganikAPI, Fault

Job = tuple[list[int], int]  # (transaction IDs, tries left)


async def worker(client: OrganikClient, jobs: asyncio.Queue[Job], done: list[int]) -> None:
    while True:
        ids, tries_left = await jobs.get()
        try:
            rows = await client.detailed_report(transaction_ids=ids)
            done.append(len(rows))
        except BulkReportError as exc:  # some batches failed: keep the rows, retry the rest
            done.append(len(exc.rows))
            if tries_left:
                jobs.put_nowait((exc.failed_id_arguments["transaction_ids"], tries_left - 1))
        except OrganikError as exc:  # a one-request job failed as a whole
            if tries_left:
                jobs.put_nowait((ids, tries_left - 1))
            else:
                print(f"giving up on {ids}: {exc}")
        finally:
            jobs.task_done()


async def main() -> int:
    fake = FakeOrganikAPI(
        Dataset.generate(20_000, seed=3),
        faults=[Fault.status(503, probability=0.2), Fault.latency((0.0, 0.02))],
        seed=3,
    )
    ids = fake.dataset.transaction_ids
    jobs: asyncio.Queue[Job] = asyncio.Queue()
    for start in range(0, len(ids), 50):
        jobs.put_nowait((ids[start : start + 50], 2))
    done: list[int] = []
    async with fake.client(rate_limit=200, max_retries=1, backoff_base=0.01) as client:
        tasks = [asyncio.create_task(worker(client, jobs, done)) for _ in range(4)]
        await jobs.join()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(f"{sum(done)} rows of {len(fake.dataset)} in {fake.stats.requests} requests")
    return sum(done)


if __name__ == "__main__":
    asyncio.run(main())
