"""What the command line's tests share: the simulator behind a switch, ``main`` run
in-process, the installed console script run in a process of its own, and its outputs read.

One server serves each test module (the ``server`` fixture of ``tests/cli/conftest.py``);
a test plugs its own simulator in with `served`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from organik_async import DetailedReport
from organik_async._cli import main
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI

DATASET = Dataset.generate(3_000, seed=5, max_transaction_rows=60)
TX = DATASET.transaction_ids
"""The in-process tests' data set and its transaction IDs."""
BIG = Dataset.generate(3_000, seed=11, max_transaction_rows=40)
TRACKS = list(BIG.gsm_track_ids())
"""The console script's data set, asked for by GSM track ID."""

SCRIPT = Path(sys.executable).with_name("organik-report")
"""The console script the package installs beside this interpreter."""


class Switch:
    """One server for the module; each test plugs its own simulator in."""

    app: FakeOrganikAPI | None = None
    url = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "served(fake) plugs a simulator in"
        await self.app(scope, receive, send)


SWITCH = Switch()


@contextmanager
def served(fake: FakeOrganikAPI) -> Iterator[str]:
    """``fake`` served over TCP by the module's server: its base URL."""
    SWITCH.app = fake
    try:
        yield SWITCH.url
    finally:
        SWITCH.app = None


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    """``organik-report *argv`` in-process: its exit code and what it wrote to stderr."""
    code = main([str(arg) for arg in argv])
    return code, capsys.readouterr().err


def script(*argv: str | Path) -> list[str]:
    """The command line that runs the installed console script with ``argv``."""
    assert SCRIPT.exists(), f"install the package first: {SCRIPT} is missing"
    return [str(SCRIPT), *map(str, argv)]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this one's without ``ORGANIK_*``, ``FORCE_*``
    or ``OTEL_*``, with the demo key, unbuffered output and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGANIK_", "FORCE_", "OTEL_"))}
    return env | {"ORGANIK_API_KEY": DEMO_API_KEY, "PYTHONUNBUFFERED": "1"} | extra


def ids_file(tmp_path: Path, values: Iterable[object], name: str = "ids.txt") -> Path:
    """``values`` written one a line to ``tmp_path / name``."""
    path = tmp_path / name
    path.write_text("".join(f"{v}\n" for v in values), encoding="utf-8")
    return path


def rows_of(path: Path) -> list[DetailedReport]:
    """The rows of an output file: a JSON array (``.json``) or JSON lines."""
    data = path.read_bytes()
    if path.suffix == ".json":
        return msgspec.json.decode(data, type=list[DetailedReport])
    decoder = msgspec.json.Decoder(DetailedReport)
    return [decoder.decode(line) for line in data.splitlines()]


def tracks(rows: list[DetailedReport]) -> list[str]:
    """The rows' ``gsm_track_id``s, sorted: what a run's output is compared by."""
    return sorted(str(row.gsm_track_id) for row in rows)
