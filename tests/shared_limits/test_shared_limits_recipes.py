"""The recipes of docs/shared-limits.md run as written: the Kubernetes Indexed Job's
command for every index, the GNU parallel line's commands, and the arq task queue
(examples/shard_queue.py) with its worker, against the simulator and a real Redis.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from organik_async.testing import Dataset, FakeOrganikAPI, Fault
from tests.helpers.cli import child_env, rows_of, tracks
from tests.helpers.paths import ROOT
from tests.helpers.served import served_from_thread

PAGE = ROOT / "docs" / "shared-limits.md"
MANIFEST = ROOT / "examples" / "kubernetes-job.yaml"
QUEUE = ROOT / "examples" / "shard_queue.py"
BIN = Path(sys.executable).parent
DATASET = Dataset.generate(800, seed=31)
TRACKS = [str(track) for track in DATASET.gsm_track_ids()]


@pytest.fixture
def job(tmp_path: Path, redis_url: str) -> Iterator[dict[str, str]]:
    """The simulator (capped at 6 at once) over TCP, the IDs in ``all.txt``, and the
    environment every recipe's processes get."""
    (tmp_path / "all.txt").write_text("".join(f"{t}\n" for t in TRACKS), encoding="utf-8")
    fake = FakeOrganikAPI(DATASET, max_concurrent_requests=6, faults=[Fault.latency(0.005)])
    with served_from_thread(fake) as base_url:
        yield child_env(
            ORGANIK_BASE_URL=base_url,
            ORGANIK_SHARED_LIMITS=redis_url,
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )


def every_row_once(outputs: list[Path]) -> None:
    assert tracks([row for out in outputs for row in rows_of(out)]) == sorted(TRACKS)


def run_together(commands: list[list[str]], cwd: Path, envs: list[dict[str, str]]) -> None:
    processes = [
        subprocess.Popen(c, cwd=cwd, env=e, stderr=subprocess.PIPE, text=True)
        for c, e in zip(commands, envs, strict=True)
    ]
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err


@pytest.mark.slow
def test_the_kubernetes_manifest_is_an_indexed_job_whose_pods_fetch_every_shard(
    tmp_path: Path, job: dict[str, str]
) -> None:
    (manifest,) = yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8"))
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    spec = manifest["spec"]
    assert spec["completionMode"] == "Indexed"
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(env) == {"ORGANIK_API_KEY", "ORGANIK_SHARED_LIMITS"}  # both from a Secret
    assert container["command"] == ["sh", "-c"]
    (script,) = container["args"]
    shards = re.search(r'--shard "\$\(\(JOB_COMPLETION_INDEX \+ 1\)\)/(\d+)"', script)
    assert shards is not None, script
    assert spec["completions"] == spec["parallelism"] == int(shards[1])
    assert "--resume" in script
    # Each pod's command, run here: /data is the test's directory.
    here = script.replace("/data", str(tmp_path))
    indexes = range(spec["completions"])
    run_together(
        [["sh", "-c", here]] * len(indexes),
        tmp_path,
        [job | {"JOB_COMPLETION_INDEX": str(i)} for i in indexes],
    )
    every_row_once([tmp_path / f"report-{i}.jsonl" for i in indexes])


@pytest.mark.slow
def test_the_gnu_parallel_line_fetches_every_shard(tmp_path: Path, job: dict[str, str]) -> None:
    text = PAGE.read_text(encoding="utf-8")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("parallel ")]
    argv = shlex.split(line)
    template = argv[argv.index("organik-report") : argv.index(":::")]
    values = argv[argv.index(":::") + 1 :]
    commands = [[arg.replace("{}", value) for arg in template] for value in values]
    run_together(commands, tmp_path, [job] * len(commands))  # what parallel runs
    every_row_once([tmp_path / f"report-{v}.jsonl" for v in values])


@pytest.mark.slow
def test_the_arq_recipe_runs_one_task_per_shard(tmp_path: Path, job: dict[str, str]) -> None:
    env = job | {"PYTHONPATH": str(QUEUE.parent)}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
        )

    for _ in range(2):  # enqueueing twice adds nothing: the job IDs name run and shard
        enqueued = run(sys.executable, str(QUEUE), "all.txt", "4", "run-1")
        assert enqueued.returncode == 0, enqueued.stderr
    worker = run(str(BIN / "arq"), "--burst", f"{QUEUE.stem}.WorkerSettings")
    assert worker.returncode == 0, worker.stderr
    log = worker.stdout + worker.stderr
    assert log.count("fetch_shard(") == 4, log  # one task per shard, each enqueued once
    assert log.count("● 'report-") == 4, log  # and each one succeeded
    every_row_once([tmp_path / f"report-{k}.jsonl" for k in range(1, 5)])


def test_the_page_shows_the_settings_every_recipe_needs() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for needed in ("--shard", "--resume", "ORGANIK_SHARED_LIMITS", "JOB_COMPLETION_INDEX"):
        assert needed in text
    source: Any = QUEUE.read_text(encoding="utf-8")
    assert '"--resume"' in source
    assert "_job_id=" in source
