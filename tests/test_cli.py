"""The ``organik-report`` command, against the simulator over real TCP."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

from organik_async import DetailedReport
from organik_async._cli import EXIT_AUTH, EXIT_FAILURES, EXIT_OK, load_ids, main, parse_args, run
from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, serve

DATASET = Dataset.generate(2_000, seed=9, max_transaction_rows=100)
TX = DATASET.transaction_ids


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ORGANIK_API_KEY", DEMO_API_KEY)
    return DEMO_API_KEY


def by_track(rows: list[DetailedReport]) -> list[DetailedReport]:
    return sorted(rows, key=lambda row: str(row.gsm_track_id))


def decode_rows(data: bytes) -> list[DetailedReport]:
    decoder = msgspec.json.Decoder(DetailedReport)
    return [decoder.decode(line) for line in data.splitlines()]


async def run_cli(fake: FakeOrganikAPI, ids_text: str, *argv: str) -> tuple[int, bytes]:
    out = io.BytesIO()
    async with serve(fake) as base_url:
        args = parse_args(["ids.txt", "--base-url", base_url, "--no-progress", *argv])
        with anyio.fail_after(30):
            code = await run(args, io.StringIO(ids_text), out)
    return code, out.getvalue()


@pytest.mark.anyio
async def test_rows_for_a_file_of_ids_are_written_as_json_lines(api_key: str) -> None:
    text = "# transaction IDs\n" + "\n".join(map(str, TX[:30])) + "\n\n"
    code, out = await run_cli(FakeOrganikAPI(DATASET), text, "--batch-size", "4")
    assert code == EXIT_OK
    # Written as batches complete: every row once, in completion order.
    assert by_track(decode_rows(out)) == by_track(DATASET.expected(transaction_ids=TX[:30]))


@pytest.mark.anyio
async def test_csv_output_has_a_header_and_one_line_per_row(api_key: str) -> None:
    code, out = await run_cli(
        FakeOrganikAPI(DATASET), "\n".join(map(str, TX[:5])), "--format", "csv"
    )
    lines = out.decode().splitlines()
    assert code == EXIT_OK
    assert lines[0].startswith("gsm,transaction_id,gsm_track_id")
    assert len(lines) == 1 + len(DATASET.expected(transaction_ids=TX[:5]))


@pytest.mark.anyio
async def test_failed_ids_go_to_a_file_the_command_reads_back(api_key: str, tmp_path: Path) -> None:
    failures = tmp_path / "failed.tsv"
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(400, on_requests={2})])
    text = "\n".join(map(str, TX[:6]))
    args = ("--batch-size", "2", "--max-concurrency", "1", "--failures", str(failures))
    code, out = await run_cli(fake, text, *args)
    assert code == EXIT_FAILURES
    assert failures.read_text().splitlines() == [
        f"transaction_ids\t{TX[2]}\tfailed\tHTTPStatusError",
        f"transaction_ids\t{TX[3]}\tfailed\tHTTPStatusError",
    ]
    assert len(decode_rows(out)) == len(DATASET.expected(transaction_ids=TX[:2] + TX[4:6]))
    # The failures file is valid input: retrying it fetches exactly what was missing.
    fake.faults.clear()
    code, out = await run_cli(fake, failures.read_text())
    assert code == EXIT_OK
    assert decode_rows(out) == DATASET.expected(transaction_ids=TX[2:4])


def test_a_plain_id_file_is_read_lazily() -> None:
    consumed = 0

    def counting(text: str) -> Iterator[str]:
        nonlocal consumed
        for line in io.StringIO(text):
            consumed += 1
            yield line

    ids = load_ids(counting("1\n2\nabc-1\n" * 1000), "gsm_track_ids")  # type: ignore[arg-type]
    assert consumed == 1  # only the first line, to see the file's shape
    assert list(ids["gsm_track_ids"])[:3] == [1, 2, "abc-1"]
    assert consumed == 3000


def test_an_unknown_kind_in_a_tagged_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "ids.tsv"
    path.write_text("bogus_ids\t1\n")
    assert main([str(path), "--base-url", "http://127.0.0.1:9"]) != EXIT_OK


def test_without_a_key_the_command_says_so_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ORGANIK_API_KEY", raising=False)
    path = tmp_path / "ids.txt"
    path.write_text("1\n")
    assert main([str(path)]) == EXIT_AUTH
    assert "ORGANIK_API_KEY" in capsys.readouterr().err


def test_demo_runs_the_main_job_over_real_http(tmp_path: Path) -> None:
    output = tmp_path / "demo.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "organik_async._cli", "--demo", "--demo-rows", "3000"]  # noqa: RUF005
        + ["--output", str(output), "--max-concurrency", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert "3000 rows" in done.stderr
    rows = decode_rows(output.read_bytes())
    assert len(rows) == len({r.gsm_track_id for r in rows}) == 3000
