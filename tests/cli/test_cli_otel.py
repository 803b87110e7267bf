"""``organik-report --otel``: a bulk run's spans and metrics, exported as ``OTEL_*`` says.

Run as an operator runs it (the console script, its own process) against the simulator
over TCP, with the console exporters: the rows on stdout are untouched, the spans and
metrics go to stderr, and the key is in none of it. Without the SDK, ``--otel`` is a
usage error, before anything is sent.
"""

from __future__ import annotations

import json
import subprocess
import sys

import msgspec
import pytest

from organik_async import DetailedReport
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI
from tests.helpers.cli import SCRIPT, child_env, served

pytestmark = [pytest.mark.usefixtures("server"), pytest.mark.slow]

DATASET = Dataset.generate(1_000, seed=4)


@pytest.fixture
def env() -> dict[str, str]:
    """The console script's environment, with the console exporters."""
    return child_env(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
        OTEL_SERVICE_NAME="nightly-reports",
    )


def test_a_bulk_run_exports_its_spans_and_metrics(env: dict[str, str]) -> None:
    ids = DATASET.transaction_ids[:6]
    with served(FakeOrganikAPI(DATASET)) as url:
        done = subprocess.run(
            [str(SCRIPT), "fetch", "--otel", "-q", "--base-url", url, "--transaction-ids", "-"],
            input="".join(f"{i}\n" for i in ids),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    decoder = msgspec.json.Decoder(DetailedReport)
    rows = [decoder.decode(line) for line in done.stdout.splitlines()]
    assert sorted(r.gsm_track_id for r in rows) == sorted(
        r.gsm_track_id for r in DATASET.expected(transaction_ids=ids)
    )
    exported = [json.loads(block) for block in _json_objects(done.stderr)]
    spans = [item for item in exported if "context" in item and "name" in item]
    names = {span["name"] for span in spans}
    assert {"POST", "organik.iter_batches"} <= names
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"nightly-reports"}
    assert '"organik.client.requests"' in done.stderr
    assert '"http.client.request.duration"' in done.stderr
    key = DEMO_API_KEY.lower()
    shown = (done.stdout + done.stderr).lower()
    assert [key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in shown] == []


def test_otel_without_the_sdk_is_a_usage_error(env: dict[str, str]) -> None:
    blocked = (
        "import sys; sys.modules['opentelemetry.sdk'] = None; "
        "from organik_async._cli import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked, "fetch", "--otel", "--transaction-ids", "-"],
        input="1\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--otel needs the OpenTelemetry SDK" in done.stderr


def _json_objects(text: str) -> list[str]:
    """The top-level JSON objects in ``text`` (the console exporters' output)."""
    objects, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                objects.append(text[start : index + 1])
    return objects
