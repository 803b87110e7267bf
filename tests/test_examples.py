"""The examples run, and do what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_stream_to_jsonl_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "report.jsonl"
    run("stream_to_jsonl.py", str(out))
    assert len(out.read_bytes().splitlines()) == 50_000


def test_queue_worker_gets_every_row_despite_a_flaky_provider() -> None:
    done = run("queue_worker.py")
    assert done.stdout.startswith("20000 rows of 20000 in ")
