"""``organik-report`` as an operator runs it: the installed console script, in a
process of its own, against the simulator over TCP.

Killed for real (SIGKILL, SIGINT, SIGTERM) and resumed; piped into ``head``;
run in a pseudo-terminal; run without its extra; and the demo.
"""

from __future__ import annotations

import os
import pty
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from organik_async import DetailedReport, __version__
from organik_async.testing import FakeOrganikAPI, Fault
from tests.helpers.cli import BIG, SWITCH, TRACKS, ids_file, rows_of, script, served, tracks
from tests.helpers.provider import OTHER_KEY

pytestmark = pytest.mark.usefixtures("server")


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.fixture
def slow_fake() -> FakeOrganikAPI:
    """3,000 rows by GSM track ID, 25 a request, 30 ms each: a run of about two seconds."""
    return FakeOrganikAPI(BIG, faults=[Fault.latency(0.03)])


@pytest.mark.slow
def test_stdin_to_stdout_through_the_console_script(tmp_path: Path, env: dict[str, str]) -> None:
    expected = BIG.expected(transaction_ids=BIG.transaction_ids[:10])
    with served(FakeOrganikAPI(BIG)) as url:
        done = subprocess.run(
            script("fetch", "--base-url", url, "--transaction-ids", "-"),
            input="".join(f"{v}\n" for v in BIG.transaction_ids[:10]).encode(),
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    decoder = msgspec.json.Decoder(DetailedReport)
    rows = [decoder.decode(line) for line in done.stdout.splitlines()]
    assert tracks(rows) == tracks(expected)
    err = done.stderr.decode()
    assert "organik-report fetch: complete" in err
    assert "fetching" not in err
    assert "\x1b[" not in err


def test_python_dash_m_organik_async_is_the_same_command(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "organik_async", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"organik-report {__version__}\n")


@pytest.mark.slow
def test_asking_for_aiohttp_when_it_is_not_installed_is_a_usage_error(
    tmp_path: Path, env: dict[str, str]
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n", encoding="utf-8")
    program = (
        "import sys; sys.modules['aiohttp'] = None; "  # as if it were not installed
        "from organik_async._cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = ["fetch", "--http-backend", "aiohttp", "--transaction-ids", str(ids)]
    done = subprocess.run(
        [sys.executable, "-c", program, *argv, "-o", str(tmp_path / "out.jsonl")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "the aiohttp extra, organik_async[aiohttp]" in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_a_run_killed_at_60_percent_is_finished_by_resume(
    tmp_path: Path, env: dict[str, str], slow_fake: FakeOrganikAPI
) -> None:
    out = tmp_path / "report.jsonl"
    ids = ids_file(tmp_path, TRACKS)
    batches, concurrency = len(TRACKS) // 25, 2
    with served(slow_fake) as url:
        command = script("fetch", "--base-url", url, "--gsm-track-ids", ids, "-o", out,
                         "--batch-size", "25", "--concurrency", str(concurrency))  # fmt: skip
        process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while line_count(out) < 0.6 * len(TRACKS):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        time.sleep(0.2)  # requests the kernel had already sent reach the server
        while slow_fake.stats.in_flight:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sent_before = slow_fake.stats.requests
        journal = (tmp_path / "report.jsonl.journal").read_bytes()
        journaled = journal.count(b"\n") - 1  # whole batch records, less the start record
        assert 0.55 * batches < journaled < batches
        slow_fake.stats.reset()
        slow_fake.faults.clear()  # no latency: the rest is quick
        done = subprocess.run(
            [*command, "--resume"], env=env, capture_output=True, timeout=60, check=False
        )
    assert done.returncode == 0, done.stderr
    assert sorted(str(row.gsm_track_id) for row in rows_of(out)) == sorted(map(str, TRACKS))
    # Only what was missing is fetched again; of that, at most the batches in flight twice.
    assert slow_fake.stats.requests == batches - journaled
    assert sent_before - journaled <= concurrency + 1


@pytest.mark.parametrize(
    ("signum", "code", "resume"), [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)]
)
@pytest.mark.slow
def test_ctrl_c_and_sigterm_leave_a_whole_output_and_say_how_to_resume(
    tmp_path: Path,
    env: dict[str, str],
    slow_fake: FakeOrganikAPI,
    signum: int,
    code: int,
    resume: bool,
) -> None:
    out = tmp_path / "report.json"
    ids = ids_file(tmp_path, TRACKS)
    with served(slow_fake) as url:
        process = subprocess.Popen(
            script("fetch", "--base-url", url, "--gsm-track-ids", ids, "-o", out,
                   "--batch-size", "25", "--concurrency", "2"),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        while line_count(out) < 0.3 * len(TRACKS):
            assert process.poll() is None, "the run ended before it could be stopped"
            time.sleep(0.01)
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
        assert process.returncode == code, err
        assert f"stopped by {signal.Signals(signum).name}" in err
        partial = msgspec.json.decode(out.read_bytes(), type=list[DetailedReport])
        assert 0.3 * len(TRACKS) <= len(partial) < len(TRACKS)  # a whole JSON document
        hint = err.split("to finish the job, run: ")[1].splitlines()[0]
        argv = shlex.split(hint)
        assert argv[0] == "organik-report"
        assert argv[-1] == "--resume"
        if not resume:  # resuming is the same for both signals: once is enough
            return
        slow_fake.faults.clear()
        done = subprocess.run(
            script(*argv[1:]), env=env, capture_output=True, timeout=60, check=False
        )
    assert done.returncode == 0, done.stderr
    assert sorted(str(row.gsm_track_id) for row in rows_of(out)) == sorted(map(str, TRACKS))


@pytest.mark.slow
def test_a_closed_pipe_ends_the_run_quietly(tmp_path: Path, env: dict[str, str]) -> None:
    ids = ids_file(tmp_path, TRACKS)
    with served(FakeOrganikAPI(BIG)) as url:
        line = shlex.join(script("fetch", "--base-url", url, "--gsm-track-ids", ids,
                                 "--batch-size", "50"))  # fmt: skip
        done = subprocess.run(
            ["bash", "-c", f'{line} | head -n 3; echo "exit=${{PIPESTATUS[0]}}" >&2'],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert len(done.stdout.splitlines()) == 3
    assert done.stderr == "exit=141\n"  # quiet: no "Broken pipe", no traceback, no summary


@pytest.mark.slow
def test_the_progress_bar_shows_in_a_terminal(tmp_path: Path, env: dict[str, str]) -> None:
    ids = ids_file(tmp_path, TRACKS)
    fake = FakeOrganikAPI(BIG, faults=[Fault.latency(0.01)])
    master, slave = pty.openpty()
    with served(fake) as url:
        process = subprocess.Popen(
            script("fetch", "--base-url", url, "--gsm-track-ids", ids, "-o",
                   tmp_path / "r.jsonl", "--batch-size", "100"),
            env=env | {"TERM": "xterm-256color"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
        )  # fmt: skip
        os.close(slave)
        screen = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not chunk:
                break
            screen += chunk
        process.wait(timeout=60)
        os.close(master)
    text = screen.decode(errors="replace")
    assert process.returncode == 0, text
    assert "fetching" in text
    assert "━" in text
    assert "30/30" in text
    assert "batches" in text
    assert "rows/s" in text
    assert "ETA" in text
    assert "3,000 rows" in text
    assert "in flight" in text


@pytest.mark.slow
def test_without_the_cli_extra_it_says_what_to_install_and_sends_nothing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    blocked = tmp_path / "blocked"
    (blocked / "rich").mkdir(parents=True)
    (blocked / "rich" / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    fake = FakeOrganikAPI(BIG)
    with served(fake) as url:
        done = subprocess.run(
            script("fetch", "--base-url", url, "--transaction-ids",
                   ids_file(tmp_path, BIG.transaction_ids[:2])),
            env=env | {"PYTHONPATH": str(blocked)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == ("organik-report needs rich: the cli extra, organik_async[cli]\n")
    assert fake.stats.requests == 0


@pytest.mark.slow
def test_the_key_is_absent_from_every_byte_written(tmp_path: Path, env: dict[str, str]) -> None:
    env = env | {"ORGANIK_API_KEY": OTHER_KEY}
    fake = FakeOrganikAPI(BIG, api_keys=[OTHER_KEY], faults=[Fault.status(502, on_requests={2, 3})])
    ids = ids_file(tmp_path, BIG.transaction_ids[:6])
    streams: list[bytes] = []
    with served(fake) as url:
        done = subprocess.run(
            script("fetch", "--base-url", url, "-vv", "--http-backend", "httpx",
                   "--transaction-ids", ids, "--retries", "1", "--batch-size", "2",
                   "--concurrency", "1", "-o", tmp_path / "r.csv",
                   "--summary-json", tmp_path / "s.json"),
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        streams += [done.stdout, done.stderr]
        assert done.returncode == 1  # one batch failed twice: a failed file with its reason
        assert b"HTTP Request: POST" in done.stderr
        env["ORGANIK_API_KEY"] = OTHER_KEY[::-1]  # refused: code 99
        done = subprocess.run(
            script("fetch", "--base-url", url, "-vv", "--transaction-ids", ids,
                   "-o", tmp_path / "r2.csv"),
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        streams += [done.stdout, done.stderr]
    assert done.returncode == 3
    files = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    assert {p.name for p in tmp_path.iterdir()} >= {
        "r.csv",
        "r.csv.journal",
        "r.csv.failed.csv",
        "s.json",
    }
    for data in files + streams:
        for key in (OTHER_KEY, OTHER_KEY[::-1]):
            assert key.encode() not in data
            assert key.upper().encode() not in data


@pytest.mark.slow
def test_the_demo_runs_the_main_job_over_real_http(tmp_path: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        script("demo"),
        cwd=tmp_path,
        env={k: v for k, v in env.items() if k != "ORGANIK_API_KEY"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = rows_of(tmp_path / "demo-report.jsonl")
    assert len(rows) == len({str(row.gsm_track_id) for row in rows}) == 200_000
    assert "organik-report demo: complete" in done.stderr
    assert "200,000 in demo-report.jsonl (jsonl)" in done.stderr
    assert "2,000 rows skipped: already written" in done.stderr
    assert "(3 retried, 1 refused)" in done.stderr  # the faults, absorbed
    assert SWITCH.app is None  # the demo serves its own simulator
