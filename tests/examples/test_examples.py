"""The examples run as documented, and do what they say.

The web service and the SQLite worker have their own, deeper tests
(test_example_web_service.py, test_example_sqlite_worker.py).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from organik_async import DeliveryStatus
from organik_async.testing import Dataset
from tests.helpers.paths import EXAMPLES

pytestmark = pytest.mark.slow


def run(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def test_stream_to_jsonl_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "report.jsonl"
    run("stream_to_jsonl.py", str(out))
    assert len(out.read_bytes().splitlines()) == 50_000


def test_the_trio_program_reports_every_row_by_status() -> None:
    done = run("trio_report.py", "--rows", "10000")
    data = list(Dataset.generate(10_000, seed=1))
    transactions = len({row.transaction_id for row in data})
    lines = done.stdout.splitlines()
    assert re.fullmatch(rf"10000 rows for {transactions} transactions in \d+ requests", lines[0])
    counts = Counter(DeliveryStatus(row.status).name for row in data)
    assert lines[1:] == [f"{name}: {count}" for name, count in sorted(counts.items())]


def test_the_sqlite_worker_demo_writes_rows_once_and_records_which_jobs_failed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "reports.db"
    done = run("sqlite_worker.py", str(db), "--rows", "5000", "--latency", "0.01", check=False)
    summary = done.stdout.splitlines()[-1]
    found = re.fullmatch(
        r"(\d+) jobs done, (\d+) failed, 0 already done; (\d+) rows written", summary
    )
    assert found is not None, summary
    jobs_done, jobs_failed, rows = map(int, found.groups())
    assert done.returncode == (2 if jobs_failed else 0), done.stderr
    with closing(sqlite3.connect(db)) as store:
        assert store.execute("SELECT count(*) FROM reports").fetchone() == (rows,)
        recorded = dict(store.execute("SELECT outcome, count(*) FROM jobs GROUP BY 1").fetchall())
        failed_ids = [
            ids for (ids,) in store.execute("SELECT failed_ids FROM jobs WHERE outcome = 'failed'")
        ]
    expected = {"done": jobs_done, "failed": jobs_failed}
    assert recorded == {outcome: n for outcome, n in expected.items() if n}
    assert all(ids.startswith('{"transaction_ids":[') for ids in failed_ids)
    assert rows <= 5_000
