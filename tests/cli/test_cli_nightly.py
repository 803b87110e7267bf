"""``organik-report`` run unattended, as a nightly cron job runs it.

A day with no sends, stderr closed or piped into ``head``, log lines kept in a
file: the exit code keeps its documented meaning and the output is whole,
whatever happens around the run.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from organik_async._cli._inputs import InputError, Source, read_inputs
from organik_async.testing import DEMO_API_KEY, FakeOrganikAPI, Fault
from tests.helpers.cli import DATASET, TX, ids_file, rows_of, run, script, served, tracks

pytestmark = pytest.mark.usefixtures("api_key", "server")


# --- A day with no sends ----------------------------------------------------------------------


@pytest.mark.parametrize("data", ["", "\r\n \r\n", "\ufeff", "İşlem No;Kampanya\r\n"])
def test_allow_empty_reads_an_input_with_no_id_as_nothing_to_fetch(
    tmp_path: Path, data: str
) -> None:
    path = tmp_path / "sent.csv"
    path.write_text(data, encoding="utf-8")
    sources = [Source("transaction_ids", str(path))]
    with pytest.raises(InputError, match=r"no IDs in the input.*--allow-empty"):
        read_inputs(sources, column="İşlem No")
    inputs = read_inputs(sources, column="İşlem No", allow_empty=True)
    assert (inputs.ids_read, inputs.total) == (0, 0)


def test_allow_empty_does_not_cover_an_input_whose_every_line_is_bad(tmp_path: Path) -> None:
    path = ids_file(tmp_path, ["14096618x"])
    with pytest.raises(InputError, match="no IDs in the input"):
        read_inputs([Source("transaction_ids", str(path))], skip_bad_lines=True, allow_empty=True)


@pytest.mark.parametrize(("fmt", "empty"), [("jsonl", b""), ("csv", None), ("json", b"[\n\n]\n")])
def test_an_empty_input_with_allow_empty_is_an_empty_report_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, empty: bytes | None
) -> None:
    sent = ids_file(tmp_path, [], "sent.txt")
    out = tmp_path / f"report.{fmt}"
    out.write_bytes(b"yesterday's rows\n")
    (tmp_path / f"report.{fmt}.failed.csv").write_text("kind,id\n", encoding="utf-8")
    summary = tmp_path / "summary.json"
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", sent, "-o", out)
        assert code == 2  # the default: an empty input is an error
        assert out.read_bytes() == b"yesterday's rows\n"
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", sent, "-o", out,
                        "--allow-empty", "--summary-json", summary)  # fmt: skip
    assert code == 0, err
    assert fake.stats.requests == 0
    data = out.read_bytes()
    if empty is None:
        assert data.startswith(b"gsm,transaction_id,")
        assert data.count(b"\n") == 1
    else:
        assert data == empty
    assert "nothing to fetch: the input holds no IDs" in err
    assert json.loads(summary.read_bytes())["outcome"] == "empty_input"
    assert not (tmp_path / f"report.{fmt}.failed.csv").exists()


# --- stderr closed, or its reader gone ----------------------------------------------------------


def _shell(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "redirect",
    [
        "2>&1 >/dev/null | head -n 1",  # stderr's reader goes away after one line
        "2>&-",  # stderr closed before the start
    ],
)
def test_a_complete_run_exits_0_whatever_happens_to_stderr(
    tmp_path: Path, env: dict[str, str], redirect: str
) -> None:
    out = tmp_path / "report.jsonl"
    ids = ids_file(tmp_path, TX[:40])
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, retry_after=0, on_requests={2})])
    with served(fake) as url:
        line = shlex.join(script("fetch", "--base-url", url, "--transaction-ids", ids, "-o", out,
                                 "--batch-size", "2", "--concurrency", "1", "-vv"))  # fmt: skip
        done = _shell(f'exec 3>&1; {line} {redirect}; echo "exit=${{PIPESTATUS[0]}}" >&3', env)
    assert done.stdout.splitlines()[-1] == "exit=0", done
    assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:40]))
    assert not (tmp_path / "report.jsonl.failed.csv").exists()


@pytest.mark.slow
def test_failures_exit_1_with_their_failed_file_when_stderr_is_closed(
    tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "report.jsonl"
    ids = ids_file(tmp_path, TX[:4])
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(502, on_requests={1, 2})])
    with served(fake) as url:
        line = shlex.join(script("fetch", "--base-url", url, "--transaction-ids", ids, "-o", out,
                                 "--batch-size", "2", "--concurrency", "1",
                                 "--retries", "1"))  # fmt: skip
        done = _shell(f'exec 3>&1; {line} 2>&-; echo "exit=$?" >&3', env)
    assert done.stdout.splitlines()[-1] == "exit=1", done
    failed = (tmp_path / "report.jsonl.failed.csv").read_text(encoding="utf-8")
    assert failed.count("\n") == 3  # the header and the two IDs of the first batch


@pytest.mark.slow
def test_rows_for_a_closed_stdout_are_refused_before_anything_is_sent(
    tmp_path: Path, env: dict[str, str]
) -> None:
    ids = ids_file(tmp_path, TX[:4])
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        line = shlex.join(script("fetch", "--base-url", url, "--transaction-ids", ids))
        done = _shell(f"{line} >&-", env)
    assert done.returncode == 2, done.stderr
    assert "standard output is closed" in done.stderr
    assert fake.stats.requests == 0


# --- Logs in a file -------------------------------------------------------------------------

_LOG_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (INFO|DEBUG|WARNING|ERROR) "
    r"(organik_async|httpx)(\.\w+)*: \S.*"
)


@pytest.mark.slow
def test_log_lines_in_a_file_are_one_a_record_with_an_iso_time_logger_and_level(
    tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "report.jsonl"
    log = tmp_path / "nightly.log"
    ids = ids_file(tmp_path, TX[:8])
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, retry_after=0, on_requests={2})])
    with served(fake) as url:
        line = shlex.join(script("fetch", "--base-url", url, "--transaction-ids", ids, "-o", out,
                                 "--batch-size", "2", "--concurrency", "1", "-vv"))  # fmt: skip
        done = _shell(f"{line} 2>{shlex.quote(str(log))}", env | {"COLUMNS": "80"})
    assert done.returncode == 0, log.read_text(encoding="utf-8")
    lines = log.read_text(encoding="utf-8").splitlines()
    records = [line for line in lines if _LOG_LINE.fullmatch(line)]
    assert len(records) >= 5  # a retry, and a line for each request
    assert any(" INFO organik_async" in line and "retry" in line.lower() for line in records)
    assert sum(" DEBUG organik_async" in line and "POST" in line for line in records) >= 4
    # Every line is a whole log record or the summary's: no record wraps onto a second line.
    first_summary = next(i for i, line in enumerate(lines) if "organik-report fetch:" in line)
    assert all(_LOG_LINE.fullmatch(line) for line in lines[:first_summary]), lines


# --- The key ----------------------------------------------------------------------------------


def test_a_key_in_upper_case_hex_works_and_is_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGANIK_API_KEY", DEMO_API_KEY.upper())
    out = tmp_path / "report.jsonl"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "-vv", "--http-backend", "httpx",
                        "--transaction-ids", ids_file(tmp_path, TX[:3]), "-o", out)  # fmt: skip
    assert code == 0, err
    assert "HTTP Request: POST" in err
    for shown in (err, out.read_text(encoding="utf-8")):
        assert DEMO_API_KEY not in shown.lower()


@pytest.mark.slow
@pytest.mark.parametrize("redirect", ["2>&1 >/dev/null | true", "2>&-"])
def test_a_usage_error_exits_2_whatever_happens_to_stderr(
    tmp_path: Path, env: dict[str, str], redirect: str
) -> None:
    line = shlex.join(script("fetch", "--no-such-flag"))
    done = _shell(f'exec 3>&1; {line} {redirect}; echo "exit=${{PIPESTATUS[0]}}" >&3', env)
    assert done.stdout.splitlines()[-1] == "exit=2", done
    assert "Traceback" not in done.stdout + done.stderr
