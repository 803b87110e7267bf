"""examples/sqlite_worker.py: whole jobs, idempotent re-runs, failures recorded, clean stops.

The worker is an asyncio program (``asyncio.Queue``, signal handlers), so
these tests drive it with ``asyncio.run``, in-process against the simulator,
and stop a real process with SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from organik_async import AuthenticationError, OrganikClient
from organik_async.testing import Dataset, FakeOrganikAPI, Fault
from tests.helpers.paths import EXAMPLES

sys.path.insert(0, str(EXAMPLES))
from sqlite_worker import Job, ReportStore, Tally, plan_jobs, run

DATA = Dataset.generate(3_000, seed=21)
JOBS = plan_jobs(DATA.transaction_ids, 2)
EVERY_ROW = list(DATA)


def expected_tracks(job: Job) -> set[str]:
    wanted = set(job.transaction_ids)
    return {str(row.gsm_track_id) for row in EVERY_ROW if row.transaction_id in wanted}


def dump(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every row and every job, sorted: what the database holds."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT * FROM reports ORDER BY gsm_track_id").fetchall()
        jobs = db.execute(
            "SELECT job_id, outcome, rows, failed_ids, reason FROM jobs ORDER BY job_id"
        ).fetchall()
    return rows, jobs


def tracks_by_job(path: Path) -> dict[str, set[str]]:
    with closing(sqlite3.connect(path)) as db:
        found: dict[str, set[str]] = {}
        for job_id, track in db.execute("SELECT job_id, gsm_track_id FROM reports"):
            found.setdefault(job_id, set()).add(track)
    return found


def outcomes(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT job_id, outcome FROM jobs").fetchall())


def assert_no_job_half_written(path: Path, jobs: list[Job]) -> dict[str, str]:
    """Done jobs have all their rows; unrecorded jobs have none. Returns the outcomes."""
    recorded = outcomes(path)
    written = tracks_by_job(path)
    for job in jobs:
        if recorded.get(job.job_id) == "done":
            assert written.get(job.job_id, set()) == expected_tracks(job), job.job_id
        elif job.job_id not in recorded:
            assert job.job_id not in written, job.job_id
    assert set(written) <= set(recorded)
    return recorded


def work(
    fake: FakeOrganikAPI,
    db: Path,
    jobs: list[Job],
    *,
    skip_done: bool = True,
    workers: int = 3,
    **client: object,
) -> Tally:
    async def main() -> Tally:
        store = ReportStore(db)
        try:
            async with fake.client(backoff_base=0, **client) as organik, asyncio.timeout(30):
                return await run(organik, store, jobs, workers=workers, skip_done=skip_done)
        finally:
            store.close()

    return asyncio.run(main())


def test_every_job_is_written_whole_and_a_rerun_adds_nothing_twice(tmp_path: Path) -> None:
    db = tmp_path / "reports.db"
    first = work(FakeOrganikAPI(DATA), db, JOBS)
    assert (first.done, first.failed, first.rows) == (len(JOBS), 0, len(DATA))
    before = dump(db)
    assert len(before[0]) == len(DATA)
    assert_no_job_half_written(db, JOBS)

    again = work(FakeOrganikAPI(DATA), db, JOBS, skip_done=False)  # every job run again
    assert (again.done, again.rows) == (len(JOBS), len(DATA))
    assert dump(db) == before  # the same rows, once each

    resumed = work(FakeOrganikAPI(DATA), db, JOBS)  # the default: done jobs are skipped
    assert (resumed.skipped, resumed.rows) == (len(JOBS), 0)


def test_a_rerun_refreshes_a_row_whose_status_changed(tmp_path: Path) -> None:
    db = tmp_path / "reports.db"
    job = JOBS[0]
    rows = DATA.expected(transaction_ids=job.transaction_ids)
    pending = [msgspec.structs.replace(row, status=1, finish_date=None) for row in rows]
    work(FakeOrganikAPI(pending), db, [job])
    work(FakeOrganikAPI(rows), db, [job], skip_done=False)  # later, the final statuses
    with closing(sqlite3.connect(db)) as store:
        statuses = dict(store.execute("SELECT gsm_track_id, status FROM reports").fetchall())
    assert statuses == {str(row.gsm_track_id): row.status for row in rows}


def test_a_failed_job_is_recorded_with_its_failed_ids_and_the_worker_goes_on(
    tmp_path: Path,
) -> None:
    db = tmp_path / "reports.db"
    jobs = JOBS[:4]
    # One worker, one request at a time, one transaction per request: request 4 is the
    # second batch of the second job, request 5 the whole of the third (one-ID) job.
    jobs[2] = Job(jobs[2].job_id, jobs[2].transaction_ids[:1])
    fake = FakeOrganikAPI(DATA, faults=[Fault.provider_error(95, on_requests={4, 5})])
    tally = work(fake, db, jobs, workers=1, max_retries=0, batch_sizes=1, max_concurrency=1)
    assert (tally.done, tally.failed) == (2, 2)
    _, recorded = dump(db)
    by_id = {job_id: rest for job_id, *rest in recorded}

    partial = jobs[1]
    outcome, rows, failed, reason = by_id[partial.job_id]
    assert outcome == "failed"
    assert json.loads(str(failed)) == {"transaction_ids": partial.transaction_ids[1:]}
    assert "1 of 2 requests failed" in str(reason)
    assert "provider error 95" in str(reason)
    kept = expected_tracks(Job("", partial.transaction_ids[:1]))
    assert rows == len(kept)
    assert tracks_by_job(db)[partial.job_id] == kept  # the rows that came are kept

    whole = jobs[2]
    outcome, rows, failed, reason = by_id[whole.job_id]
    assert (outcome, rows) == ("failed", 0)
    assert json.loads(str(failed)) == {"transaction_ids": whole.transaction_ids}
    assert str(reason).startswith("provider error 95")
    assert "***" in str(reason)
    assert fake.api_key not in str(reason)

    assert by_id[jobs[3].job_id][0] == "done"  # the worker went on

    retried = work(FakeOrganikAPI(DATA), db, jobs)  # a re-run retries what failed
    assert (retried.skipped, retried.done) == (2, 2)
    assert set(assert_no_job_half_written(db, jobs).values()) == {"done"}


def test_cancelling_the_worker_leaves_no_job_half_written(tmp_path: Path) -> None:
    db = tmp_path / "reports.db"
    fake = FakeOrganikAPI(DATA, faults=[Fault.latency((0.01, 0.05))], seed=4)
    finished: list[str] = []

    async def main() -> None:
        store = ReportStore(db)
        try:
            async with fake.client(batch_sizes=1) as organik:
                two_done = asyncio.Event()

                def on_job(job: Job, outcome: str, rows: int) -> None:
                    finished.append(job.job_id)
                    if len(finished) == 2:
                        two_done.set()

                task = asyncio.create_task(run(organik, store, JOBS, workers=3, on_job=on_job))
                async with asyncio.timeout(10):
                    await two_done.wait()
                    while fake.stats.in_flight == 0:  # noqa: ASYNC110 - stats only
                        await asyncio.sleep(0.001)
                task.cancel()  # with requests of other jobs under way
                with pytest.raises(asyncio.CancelledError):
                    await task
        finally:
            store.close()

    asyncio.run(main())
    recorded = assert_no_job_half_written(db, JOBS)
    assert set(recorded) == set(finished)
    assert 2 <= len(recorded) < len(JOBS)

    rest = work(FakeOrganikAPI(DATA), db, JOBS)  # and a re-run finishes the work
    assert rest.skipped == len(recorded)
    assert len(dump(db)[0]) == len(DATA)


def test_a_bad_key_stops_the_worker(tmp_path: Path) -> None:
    db = tmp_path / "reports.db"
    fake = FakeOrganikAPI(DATA, api_keys=["f" * 32])
    with pytest.raises(AuthenticationError):
        work(fake, db, JOBS, api_key="0" * 32)
    assert outcomes(db) == {}
    assert fake.stats.requests <= 3  # one per worker, not one per job


def worker_process(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, str(EXAMPLES / "sqlite_worker.py"), str(db)),
            *("--rows", "3000", "--seed", "21", "--job-size", "2", "--failure-rate", "0"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines(process: subprocess.Popen[str]) -> Iterator[str]:
    assert process.stdout is not None
    yield from process.stdout


@pytest.mark.slow
def test_sigterm_stops_the_worker_process_with_no_job_half_written(tmp_path: Path) -> None:
    db = tmp_path / "reports.db"
    process = worker_process(db, "--latency", "0.3", "--workers", "2")
    try:
        first = next(lines(process))  # a job is recorded, others are in flight
        assert " done: " in first
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM: no job half-written" in stderr
    recorded = assert_no_job_half_written(db, JOBS)
    assert 1 <= len(recorded) < len(JOBS)

    rows_before = len(dump(db)[0])
    rerun = worker_process(db, "--latency", "0")
    out, stderr = rerun.communicate(timeout=30)
    assert rerun.returncode == 0, stderr
    assert out.splitlines()[-1] == (
        f"{len(JOBS) - len(recorded)} jobs done, 0 failed, {len(recorded)} already done; "
        f"{len(DATA) - rows_before} rows written"
    )
    assert set(assert_no_job_half_written(db, JOBS).values()) == {"done"}
    assert len(dump(db)[0]) == len(DATA)


@pytest.mark.slow
def test_asyncio_cancelling_a_bulk_query_mid_flight_raises_only_cancelled_error() -> None:
    """The worker is stopped with asyncio's own ``task.cancel()``: that must be clean."""
    fake = FakeOrganikAPI(DATA, faults=[Fault.latency((0.0, 0.004))], seed=5)
    ids = DATA.transaction_ids
    pause = random.Random(5)

    async def stream(organik: OrganikClient) -> None:
        async with organik.iter_detailed_report(transaction_ids=ids) as rows:
            async for _ in rows:
                pass

    async def collect(organik: OrganikClient) -> None:
        await organik.detailed_report(transaction_ids=ids)

    async def main() -> list[BaseException]:
        escaped: list[BaseException] = []
        async with fake.client(batch_sizes=1) as organik:
            for attempt in range(80):
                if attempt % 2:
                    task = asyncio.create_task(collect(organik))
                else:
                    task = asyncio.create_task(stream(organik))
                await asyncio.sleep(pause.uniform(0.0, 0.01))
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except BaseException as exc:  # an ExceptionGroup(BrokenResourceError), say
                    escaped.append(exc)
        return escaped

    assert asyncio.run(main()) == []
