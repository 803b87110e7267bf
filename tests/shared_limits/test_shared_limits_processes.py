"""Shared limits across real OS processes: ``organik-report fetch --shard K/N
--shared-limits URL`` run N times against the simulator capped at 6 requests at once,
and a holder killed with SIGKILL mid-request.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from organik_async import OrganikClient, SharedLimits
from organik_async._shared import account_digest
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, serve
from tests.helpers.cli import SCRIPT, child_env, rows_of
from tests.helpers.redis_server import RedisServer
from tests.helpers.served import served_from_thread

pytestmark = pytest.mark.slow

DATASET = Dataset.generate(3_000, seed=23, max_transaction_rows=40)
TRACKS = [str(track) for track in DATASET.gsm_track_ids()]


def shard_command(k: int, n: int, ids: Path, out: Path, base_url: str) -> list[str]:
    return [
        str(SCRIPT), "fetch", "--gsm-track-ids", str(ids), "--shard", f"{k}/{n}",
        "--resume", "-o", str(out), "--base-url", base_url, "--batch-size", "25",
        "--concurrency", "16", "--retries", "10", "-q",
    ]  # fmt: skip


def run_all(
    commands: list[list[str]], env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at once (as a job array does); wait for all."""
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    done = []
    for process, command in zip(processes, commands, strict=True):
        out, err = process.communicate(timeout=240)
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


def test_processes_sharing_redis_get_every_row_with_few_refusals(
    tmp_path: Path, redis_url: str
) -> None:
    fake = FakeOrganikAPI(DATASET, max_concurrent_requests=6, faults=[Fault.latency((0.01, 0.03))])
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{t}\n" for t in TRACKS), encoding="utf-8")
    n = 3
    outputs = [tmp_path / f"report-{k}.jsonl" for k in range(1, n + 1)]
    with served_from_thread(fake) as base_url:
        commands = [shard_command(k, n, ids, outputs[k - 1], base_url) for k in range(1, n + 1)]
        commands[0] += ["--shared-limits", redis_url]  # the others read the environment
        done = run_all(commands, child_env(ORGANIK_SHARED_LIMITS=redis_url))
    for result in done:
        assert result.returncode == 0, result.stderr
    rows = [row for out in outputs for row in rows_of(out)]
    assert sorted(str(row.gsm_track_id) for row in rows) == sorted(TRACKS)  # each once
    assert fake.stats.peak_admitted <= 6
    # Independent processes see about a third of their requests refused here; sharing
    # one budget leaves the few of the adaptive limit's probing above the cap.
    assert fake.stats.refused <= 0.1 * fake.stats.requests, fake.stats


HOLDER = """
import sys, anyio
from organik_async import OrganikClient, SharedLimits

async def main() -> None:
    limits = SharedLimits(sys.argv[2], lease=1.0, max_in_flight=2)
    async with OrganikClient(
        base_url=sys.argv[1], shared_limits=limits, batch_sizes=1, max_concurrency=2
    ) as client:
        await client.detailed_report(gsm_track_ids=sys.argv[3:])

anyio.run(main)
"""


@pytest.mark.anyio
async def test_a_holder_killed_mid_request_frees_its_slots_when_its_leases_expire(
    redis_url: str, redis_server: RedisServer
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(60.0)])
    leases_key = f"organik:{{{account_digest(DEMO_API_KEY)}}}:leases"

    def leases() -> set[bytes]:
        return set(redis_server.client().zrange(leases_key, 0, -1))

    async def wait_for(condition: Callable[[], bool]) -> None:
        with anyio.fail_after(30):
            while not condition():  # noqa: ASYNC110
                await anyio.sleep(0.01)

    limits = SharedLimits(redis_url, lease=1.0, max_in_flight=2)
    async with serve(fake) as base_url:
        command = [sys.executable, "-c", HOLDER, base_url, redis_url, *TRACKS[:4]]
        async with await anyio.open_process(command, env=child_env()) as holder:
            await wait_for(lambda: fake.stats.admitted == 2)
            dead = leases()
            assert len(dead) == 2  # both slots of the account are the holder's
            holder.send_signal(signal.SIGKILL)
            await holder.wait()
        fake.faults.clear()
        with anyio.fail_after(30):
            async with OrganikClient(
                DEMO_API_KEY, base_url=base_url, shared_limits=limits, batch_sizes=1
            ) as client:
                rows = await client.detailed_report(gsm_track_ids=TRACKS[4:6])
    # The account had no free slot until the dead holder's leases expired; what is
    # left in Redis is at most those (dropped by the next step after their end).
    assert rows == DATASET.expected(gsm_track_ids=TRACKS[4:6])
    assert leases() <= dead
