"""``python -m organik_async.testing serve``, as an operator trying the command line runs it.

The process says how to point ``organik-report`` at it (base URL and the
demo key, without printing the key), and its closing stats say nothing
about a concurrency cap it does not have.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from organik_async.testing import DEMO_API_KEY, FakeOrganikAPI, Stats
from tests.helpers.provider import OTHER_KEY

SERVE = [sys.executable, "-m", "organik_async.testing", "serve", "--port", "0", "--rows", "50"]


@contextmanager
def serving(*argv: str) -> Iterator[tuple[str, list[str]]]:
    """The server process: its base URL and, filled when it has stopped, its stderr lines."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORGANIK_")}
    process = subprocess.Popen(
        [*SERVE, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url, lines
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        lines += err.splitlines()
    assert process.returncode == 0, err


@pytest.mark.slow
def test_serve_says_how_to_use_it_with_the_demo_key_without_printing_it() -> None:
    with serving() as (url, err):
        pass
    hints = [line for line in err if "ORGANIK_API_KEY" in line]
    assert len(hints) == 1, err
    assert DEMO_API_KEY not in "\n".join(err)
    command = hints[0].split("organik fake: ", 1)[-1].split(": ", 1)[1]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORGANIK_")}
    done = subprocess.run(
        ["bash", "-c", f'{command} && echo "$ORGANIK_API_KEY $ORGANIK_BASE_URL"'],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == [DEMO_API_KEY, url]


@pytest.mark.slow
def test_serve_with_keys_of_its_own_does_not_offer_the_demo_key() -> None:
    with serving("--key", OTHER_KEY) as (url, err):
        pass
    hints = [line for line in err if "ORGANIK_API_KEY" in line]
    assert len(hints) == 1
    assert "DEMO_API_KEY" not in hints[0]
    assert f"export ORGANIK_BASE_URL={url}" in hints[0]


@pytest.mark.slow
@pytest.mark.parametrize(("cap", "expected"), [(None, None), ("3", 0)])
def test_the_closing_stats_report_admissions_only_under_a_cap(
    cap: str | None, expected: int | None
) -> None:
    import httpx

    argv = ["--max-concurrent", cap] if cap else []
    with serving(*argv) as (url, err):
        for _ in range(3):
            httpx.post(f"{url}/v2/{DEMO_API_KEY}/detailedreport/", json={"data": {}}, timeout=30)
            time.sleep(0.01)
    stats = json.loads(err[-1])
    assert stats["requests"] == 3
    assert stats["max_concurrent_requests"] == (int(cap) if cap else None)
    assert stats["admitted"] == expected
    assert (stats["peak_admitted"] is None) is (cap is None)


def test_stats_as_dict_knows_the_cap_it_counts_against() -> None:
    assert Stats().as_dict()["max_concurrent_requests"] is None
    assert Stats(max_concurrent_requests=4).as_dict()["peak_admitted"] == 0
    fake = FakeOrganikAPI(max_concurrent_requests=2)
    assert fake.stats.as_dict()["max_concurrent_requests"] == 2
    assert FakeOrganikAPI().stats.as_dict()["admitted"] is None
