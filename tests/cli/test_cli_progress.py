"""The progress line at the widths operators' terminals have, and after Ctrl-C.

Frames are rendered by rich consoles of fixed widths that record what they
print; the Ctrl-C test runs the real command in a pseudo-terminal whose line
discipline echoes ``^C``, and replays what reached the terminal on a small
screen model to see what the operator sees.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from organik_async._cli._inputs import InputSet
from organik_async._cli._job import ClientOptions, Job, Ui, run_job
from organik_async._cli._progress import FIELDS_BY_USE, Frame
from organik_async.testing import FakeOrganikAPI, Fault
from tests.helpers.cli import BIG, DATASET, TRACKS, TX, ids_file, script, served

pytestmark = pytest.mark.usefixtures("server")

FRAME = Frame(total=50, done=20, rows=689_108, elapsed=3.0, flight=7, retries=4, failed=1)
MARKS = {
    "eta": "ETA 0:00:04",
    "rows": "689,108 rows",
    "failed": "1 failed",
    "elapsed": "0:00:03",
    "unit": "batches",
    "rate": "rows/s",
    "retries": "4 retries",
    "flight": "7 in flight",
    "label": "fetching",
}


def rendered(frame: Frame, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=True)
    console.print(frame)
    (line,) = console.export_text().splitlines()
    return line


@pytest.mark.parametrize("width", [60, 80, 100, 120])
def test_the_bar_done_of_total_and_the_eta_show_from_60_columns_up(width: int) -> None:
    line = rendered(FRAME, width)
    assert "━━━━━━━━━━" in line
    assert "20/50" in line
    assert "ETA 0:00:04" in line
    assert "…" not in line  # nothing is cut short: a field shows whole or not at all
    assert len(line) <= width - 2  # room for the ^C a terminal echoes


def test_at_120_columns_every_field_shows() -> None:
    line = rendered(FRAME, 120)
    assert all(mark in line for mark in MARKS.values()), line


@pytest.mark.parametrize("failed", [1, 0])
def test_the_less_useful_fields_go_first(failed: int) -> None:
    frame = replace(FRAME, failed=failed)
    order = frame.by_use()
    assert set(order) == set(FIELDS_BY_USE)
    assert (order[-1] == "failed") is (failed == 0)  # "0 failed" is the least useful
    marks = MARKS | {"failed": f"{failed} failed"}
    seen: set[tuple[str, ...]] = set()
    for width in range(60, 141):
        line = rendered(frame, width)
        shown = tuple(name for name in order if marks[name] in line)
        assert shown == order[: len(shown)], (width, line)  # a prefix, by use
        seen.add(shown)
    assert len(seen) > 4  # the fields come back one by one as the width grows


def test_the_eta_counts_down_and_ends_at_zero() -> None:
    assert "ETA -:--:--" in rendered(Frame(total=10), 80)
    assert "ETA 0:00:12" in rendered(Frame(total=10, done=2, elapsed=3.0), 80)
    assert "ETA 0:00:00" in rendered(Frame(total=10, done=10, elapsed=9.0), 80)


@pytest.mark.anyio
async def test_the_bar_counts_the_rows_written_as_the_summary_does(tmp_path: Path) -> None:
    fake = FakeOrganikAPI(DATASET)
    rows = DATASET.expected(transaction_ids=TX[:20])
    tracks = [row.gsm_track_id for row in rows]  # the same rows again, by GSM track ID
    out = tmp_path / "report.jsonl"
    job = Job(
        command="fetch",
        inputs=InputSet.of({"transaction_ids": TX[:20], "gsm_track_ids": tracks}),
        output=out,
        fmt="jsonl",
        failed_path=tmp_path / "failed.csv",
        resume=False,
        api_key=fake.api_key,
        client=ClientOptions(batch_size=4, extra={"transport": fake.transport()}),
        rerun="organik-report fetch --resume",
    )
    console = Console(width=120, record=True, file=io.StringIO(), force_terminal=True)
    summary = tmp_path / "summary.json"
    ui = Ui(console, progress=True, summary_json=summary)
    with anyio.fail_after(30):
        assert await run_job(job, ui, handle_signals=False) == 0
    written = json.loads(summary.read_bytes())["rows_this_run"]
    assert written == len(rows) < fake.stats.rows_served  # every row came twice
    frames = console.export_text().split("organik-report fetch:")[0]
    last = frames.rsplit("fetching", 1)[1]
    assert re.search(r" ([\d,]+) rows ", last)[1] == f"{written:,}"  # type: ignore[index]


# --- Ctrl-C in a terminal --------------------------------------------------------------------

_CONTROL = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen(data: str, width: int) -> list[str]:
    """The lines a terminal ``width`` columns wide shows after ``data``: text, carriage
    returns, line feeds, erasing lines, cursor up, and the wrap at the last column."""
    lines: list[list[str]] = [[]]
    row = col = 0
    pending_wrap = False
    at = 0
    while at < len(data):
        control = _CONTROL.match(data, at)
        if control:
            argument, command = control.groups()
            if command == "K":
                lines[row] = [] if argument == "2" else lines[row][:col]
            elif command == "A":
                row = max(0, row - int(argument or 1))
            at = control.end()
            continue
        char = data[at]
        at += 1
        if char == "\r":
            col, pending_wrap = 0, False
        elif char == "\n":
            row, pending_wrap = row + 1, False
        elif char >= " ":
            if pending_wrap:
                row, col, pending_wrap = row + 1, 0, False
            while len(lines) <= row:
                lines.append([])
            cells = lines[row] + [" "] * max(0, col + 1 - len(lines[row]))
            cells[col] = char
            lines[row] = cells
            if col == width - 1:
                pending_wrap = True
            else:
                col += 1
        while len(lines) <= row:
            lines.append([])
    return ["".join(cells).rstrip() for cells in lines]


def test_screen_models_the_wrap_at_the_last_column() -> None:
    assert screen("abcd^C\r\x1b[2Kabcd\r\n", 4) == ["abcd", "abcd", ""]
    assert screen("abc^C\r\x1b[2Kabc\r\n", 5) == ["abc", ""]


@pytest.mark.slow
def test_after_ctrl_c_at_80_columns_the_last_frame_shows_once(
    tmp_path: Path, env: dict[str, str]
) -> None:
    fake = FakeOrganikAPI(BIG, faults=[Fault.latency(0.05)])
    ids = ids_file(tmp_path, TRACKS)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

    def controlling_terminal() -> None:  # the pty's Ctrl-C goes to the command
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    environ = {k: v for k, v in env.items() if k != "COLUMNS"} | {"TERM": "xterm-256color"}
    with served(fake) as url:
        process = subprocess.Popen(
            script("fetch", "--base-url", url, "--gsm-track-ids", ids,
                   "-o", tmp_path / "r.jsonl", "--batch-size", "25", "--concurrency", "2"),
            env=environ,
            stdin=slave,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            start_new_session=True,
            preexec_fn=controlling_terminal,
        )  # fmt: skip
        os.close(slave)
        received = bytearray()
        deadline = time.monotonic() + 60
        interrupted = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer has gone
                    break
                if not chunk:
                    break
                received += chunk
            if not interrupted and received.count(b"ETA") >= 5:
                os.write(master, b"\x03")  # Ctrl-C, typed
                interrupted = True
        process.wait(timeout=30)
        os.close(master)
    assert process.returncode == 128 + signal.SIGINT, received.decode(errors="replace")
    shown = screen(received.decode(errors="replace"), 80)
    frames = [line for line in shown if "ETA" in line]
    assert len(frames) == 1, "\n".join(shown)
    assert any("stopped by SIGINT" in line for line in shown)
