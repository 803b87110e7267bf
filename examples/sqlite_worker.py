"""A long-lived asyncio worker: report jobs from a queue into SQLite, safe to stop and re-run.

A producer feeds jobs (a job ID and the transaction IDs it covers) into an
``asyncio.Queue``; a few workers share one rate-limited client and run each
job as one bulk query. A job's rows and its outcome are written in one SQLite
transaction, with no ``await`` inside it, so:

* a job is recorded whole or not at all: stopping the worker (SIGTERM,
  Ctrl-C, or cancelling its task) never leaves a job half-written;
* re-running a job adds nothing twice: rows are keyed by ``gsm_track_id`` and
  upserted, so a second run only refreshes what changed (a status that became
  final);
* a job that fails is recorded with the IDs that failed and why, the rows
  that did arrive are kept, and the worker goes on with the next job;
* a restart skips the jobs already done and retries the failed ones.

Runs against the simulator, with a provider that fails now and then; stop it
at any time, and run it again to finish::

    python examples/sqlite_worker.py reports.db
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec

from organik_async import (
    AuthenticationError,
    BulkReportError,
    DetailedReport,
    IdArguments,
    OrganikClient,
    OrganikError,
)
from organik_async.testing import Dataset, FakeOrganikAPI, Fault

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    gsm_track_id      TEXT PRIMARY KEY,  -- the provider's ints and strings, as text
    job_id            TEXT NOT NULL,     -- the job that wrote it last
    gsm               INTEGER NOT NULL,
    transaction_id    INTEGER NOT NULL,
    delivery_track_id TEXT,
    create_date       TEXT NOT NULL,     -- ISO 8601, the provider's local time
    start_date        TEXT NOT NULL,
    finish_date       TEXT,
    status            INTEGER NOT NULL,
    sms_count         INTEGER NOT NULL,
    credit_amount     INTEGER NOT NULL,
    is_foreign_gsm    INTEGER NOT NULL,
    errorcode         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id      TEXT PRIMARY KEY,
    outcome     TEXT NOT NULL CHECK (outcome IN ('done', 'failed')),
    rows        INTEGER NOT NULL,  -- rows written by this run of the job
    failed_ids  TEXT,              -- JSON, e.g. {"transaction_ids": [...]}; NULL when done
    reason      TEXT,              -- the error, redacted by the client; NULL when done
    finished_at TEXT NOT NULL
);
"""

_ROW_COLUMNS = (
    "gsm_track_id",
    "job_id",
    "gsm",
    "transaction_id",
    "delivery_track_id",
    "create_date",
    "start_date",
    "finish_date",
    "status",
    "sms_count",
    "credit_amount",
    "is_foreign_gsm",
    "errorcode",
)
_UPSERT_ROW = (
    f"INSERT INTO reports ({', '.join(_ROW_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_ROW_COLUMNS))}) "
    "ON CONFLICT (gsm_track_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _ROW_COLUMNS[1:])
)
_UPSERT_JOB = (
    "INSERT INTO jobs (job_id, outcome, rows, failed_ids, reason, finished_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
    "outcome = excluded.outcome, rows = excluded.rows, failed_ids = excluded.failed_ids, "
    "reason = excluded.reason, finished_at = excluded.finished_at"
)

Outcome = Literal["done", "failed", "skipped"]


class Job(msgspec.Struct, frozen=True):
    """One unit of work: the rows of these transactions."""

    job_id: str
    transaction_ids: list[int]


def plan_jobs(transaction_ids: Sequence[int], size: int) -> list[Job]:
    """The transaction IDs, ``size`` to a job, with stable IDs (a re-run finds them)."""
    return [
        Job(f"job-{start // size:05d}", list(transaction_ids[start : start + size]))
        for start in range(0, len(transaction_ids), size)
    ]


class ReportStore:
    """The SQLite side. Every write of a job is one transaction."""

    def __init__(self, path: str | Path) -> None:
        # Autocommit mode: transactions are opened and closed below, explicitly.
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def is_done(self, job_id: str) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM jobs WHERE job_id = ? AND outcome = 'done'", (job_id,)
        ).fetchone()
        return found is not None

    def record(
        self,
        job_id: str,
        rows: Iterable[DetailedReport],
        *,
        failed_ids: IdArguments | None = None,
        reason: str | None = None,
    ) -> int:
        """Write the job's rows and outcome, all or nothing; returns the rows written."""
        values = [_row_values(job_id, row) for row in rows]
        outcome = "done" if failed_ids is None else "failed"
        failed = None if failed_ids is None else msgspec.json.encode(failed_ids).decode()
        finished = datetime.now(UTC).isoformat(timespec="seconds")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(_UPSERT_ROW, values)
            self._db.execute(_UPSERT_JOB, (job_id, outcome, len(values), failed, reason, finished))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return len(values)


def _row_values(job_id: str, row: DetailedReport) -> tuple[object, ...]:
    finish = None if row.finish_date is None else row.finish_date.isoformat(sep=" ")
    return (
        str(row.gsm_track_id),
        job_id,
        row.gsm,
        row.transaction_id,
        row.delivery_track_id,
        row.create_date.isoformat(sep=" "),
        row.start_date.isoformat(sep=" "),
        finish,
        row.status,
        row.sms_count,
        row.credit_amount,
        int(row.is_foreign_gsm),
        row.errorcode,
    )


@dataclass
class Tally:
    """What a run did, job by job."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    rows: int = 0


OnJob = Callable[[Job, Outcome, int], object]


async def run_job(client: OrganikClient, store: ReportStore, job: Job) -> tuple[Outcome, int]:
    """One job: its bulk query, then one transaction with its rows and its outcome."""
    try:
        rows = await client.detailed_report(transaction_ids=job.transaction_ids)
    except AuthenticationError:
        raise  # every job would fail the same way: stop
    except BulkReportError as exc:  # some batches failed: keep the rows that came
        written = store.record(
            job.job_id, exc.rows, failed_ids=exc.failed_id_arguments, reason=str(exc)
        )
        return "failed", written
    except OrganikError as exc:  # the job's one request failed
        failed_ids: IdArguments = {"transaction_ids": list(job.transaction_ids)}
        return "failed", store.record(job.job_id, [], failed_ids=failed_ids, reason=str(exc))
    return "done", store.record(job.job_id, rows)


async def produce(jobs: Iterable[Job], queue: asyncio.Queue[Job | None], workers: int) -> None:
    for job in jobs:
        await queue.put(job)  # waits while the workers are busy: the queue stays small
    for _ in range(workers):
        await queue.put(None)  # one "no more jobs" for each worker


async def work(
    client: OrganikClient,
    store: ReportStore,
    queue: asyncio.Queue[Job | None],
    tally: Tally,
    on_job: OnJob | None,
    skip_done: bool,
) -> None:
    while (job := await queue.get()) is not None:
        if skip_done and store.is_done(job.job_id):
            outcome: Outcome = "skipped"
            written = 0
        else:
            outcome, written = await run_job(client, store, job)
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        tally.rows += written
        if on_job is not None:
            on_job(job, outcome, written)


async def run(
    client: OrganikClient,
    store: ReportStore,
    jobs: Iterable[Job],
    *,
    workers: int = 4,
    skip_done: bool = True,
    on_job: OnJob | None = None,
) -> Tally:
    """Run every job through ``workers`` workers sharing ``client``.

    Cancelling it cancels the queries in flight; jobs already recorded stay,
    the others are not recorded at all. An ``AuthenticationError`` stops it.
    """
    queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=workers)
    tally = Tally()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce(jobs, queue, workers))
            for _ in range(workers):
                group.create_task(work(client, store, queue, tally, on_job, skip_done))
    except* AuthenticationError as bad_key:
        raise bad_key.exceptions[0] from None
    return tally


def show(job: Job, outcome: Outcome, rows: int) -> None:
    print(f"{job.job_id} {outcome}: {rows} rows", flush=True)


async def main(args: argparse.Namespace) -> int:
    faults = []
    if args.latency > 0:
        faults.append(Fault.latency((0.0, args.latency)))
    if args.failure_rate > 0:
        faults.append(Fault.status(503, probability=args.failure_rate))
    fake = FakeOrganikAPI(
        Dataset.generate(args.rows, seed=args.seed), faults=faults, seed=args.seed
    )
    jobs = plan_jobs(fake.dataset.transaction_ids, args.job_size)
    store = ReportStore(args.db)
    stopped_by: list[signal.Signals] = []
    try:
        # Two requests per job (batches of 2 transactions), so that a job can fail in part.
        settings = {"rate_limit": 100, "max_retries": 1, "backoff_base": 0.05, "batch_sizes": 2}
        async with fake.client(**settings) as client:
            task = asyncio.create_task(run(client, store, jobs, workers=args.workers, on_job=show))

            def stop(signum: signal.Signals) -> None:
                stopped_by.append(signum)
                task.cancel()

            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop, signum)
            try:
                tally = await task
            except asyncio.CancelledError:
                if not stopped_by:
                    raise
                print(
                    f"stopped by {stopped_by[0].name}: no job half-written; run again to finish",
                    file=sys.stderr,
                )
                return 128 + stopped_by[0].value
            except AuthenticationError as exc:
                print(f"stopped: {exc}", file=sys.stderr)
                return 1
    finally:
        store.close()
    print(
        f"{tally.done} jobs done, {tally.failed} failed, {tally.skipped} already done; "
        f"{tally.rows} rows written",
        flush=True,
    )
    return 0 if tally.failed == 0 else 2


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Report jobs into SQLite, from the simulator.")
    parser.add_argument("db", nargs="?", default="reports.db", help="SQLite file")
    parser.add_argument("--rows", type=int, default=20_000, help="rows the simulator holds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--job-size", type=int, default=4, help="transactions per job")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.05, help="max seconds per request")
    parser.add_argument("--failure-rate", type=float, default=0.2, help="share of HTTP 503s")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
