"""A bulk job split into shards, one arq task per shard, every worker sharing one budget.

Enqueue the shards (each job ID names its run and shard, so enqueueing twice adds nothing):

    python shard_queue.py all.txt 16 run-2024-06-01

then start workers, as many as you like, on any hosts that see the file and Redis:

    arq shard_queue.WorkerSettings

Each task runs ``organik-report fetch --shard K/N --resume``: the processes of every
worker share the account's budget through ``ORGANIK_SHARED_LIMITS`` (the same Redis as
the queue here), and a shard whose worker died is fetched again from where it stopped.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings

REDIS = os.environ.get("ORGANIK_SHARED_LIMITS", "redis://localhost:6379/0")


async def fetch_shard(ctx: dict[str, Any], ids_file: str, shard: int, shards: int) -> str:
    """One shard of the job, written to ``report-K.jsonl``; raises if it did not finish."""
    output = f"report-{shard}.jsonl"
    process = await asyncio.create_subprocess_exec(
        "organik-report", "fetch", "--gsm-track-ids", ids_file,
        "--shard", f"{shard}/{shards}", "--resume", "-q", "-o", output,
    )  # fmt: skip
    code = await process.wait()
    if code != 0:  # arq records the failure; enqueue the shard again to resume it
        raise RuntimeError(f"shard {shard}/{shards} exited with {code}")
    return output


class WorkerSettings:
    """``arq shard_queue.WorkerSettings``: up to four shards at once per worker."""

    functions: ClassVar = [fetch_shard]
    redis_settings = RedisSettings.from_dsn(REDIS)
    max_jobs = 4
    job_timeout = 24 * 3600


async def enqueue(ids_file: str, shards: int, run: str) -> None:
    async with await create_pool(WorkerSettings.redis_settings) as redis:
        for shard in range(1, shards + 1):
            await redis.enqueue_job(
                "fetch_shard", ids_file, shard, shards, _job_id=f"{run}:{shard}/{shards}"
            )


if __name__ == "__main__":
    asyncio.run(enqueue(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
