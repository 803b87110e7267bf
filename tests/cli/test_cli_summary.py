"""What the summary and the messages say, checked against what happened.

Each message is compared with the fact it reports: the simulator's own count
of requests, the bytes of the output file, the files left beside it.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from organik_async import DetailedReport
from organik_async._cli import _summary, main
from organik_async._cli._progress import Frame
from organik_async._cli._sink import Tally
from organik_async._cli._summary import (
    FailureGroup,
    IdCounts,
    OutputStatus,
    Summary,
    render,
    status_rows,
)
from organik_async._cli._words import TURKISH
from organik_async.testing import FakeOrganikAPI, ManualClock
from tests.helpers.cli import DATASET, TX, ids_file, rows_of, run, served, tracks
from tests.helpers.provider import OTHER_KEY

pytestmark = pytest.mark.usefixtures("api_key", "server")


def summary_of(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_bytes())
    return data


# --- --until-final ----------------------------------------------------------------------------


@pytest.mark.slow
def test_until_final_counts_every_request_and_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Pending rows never become final: the rounds go on until the deadline.
    fake = FakeOrganikAPI(DATASET, finalize_after=3600, clock=ManualClock())
    summary = tmp_path / "summary.json"
    with served(fake) as url:
        code, err = run(
            capsys, "fetch", "--base-url", url, "--transaction-ids", ids_file(tmp_path, TX[:30]),
            "-o", tmp_path / "r.jsonl", "--until-final", "--poll-interval", "0.05",
            "--deadline", "1", "--summary-json", summary, "--batch-size", "10",
        )  # fmt: skip
    assert code == 1, err  # rows still pending at the deadline
    facts = summary_of(summary)
    assert facts["requests"] == fake.stats.requests  # every request, the follow rounds' too
    assert isinstance(facts["rounds"], int)
    assert facts["rounds"] >= 2
    assert facts["follow_requests"] == fake.stats.requests - 3  # 30 IDs, 10 a batch
    assert facts["rows_per_second"] is None  # rows over a follow period mean nothing
    assert f"{facts['rounds']} rounds, {facts['follow_requests']} requests for pending rows" in err
    assert "rows/s" not in err


# --- Messages that must not mislead ----------------------------------------------------------


def test_a_refused_key_says_the_output_was_left_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = tmp_path / "keep.jsonl"
    new = tmp_path / "new.jsonl"
    summary = tmp_path / "summary.json"
    ids = ids_file(tmp_path, TX[:4])
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", keep)
        assert code == 0, err
        yesterday = keep.read_bytes()
        monkeypatch.setenv("ORGANIK_API_KEY", OTHER_KEY)  # well-formed, refused with code 99
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", keep,
                        "--summary-json", summary)  # fmt: skip
        assert code == 3
        assert keep.read_bytes() == yesterday
        assert f"none written: {keep} left unchanged" in err
        assert f"0 in {keep}" not in err
        assert summary_of(summary)["output_status"] == "unchanged"
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", new,
                        "--summary-json", summary)  # fmt: skip
    assert code == 3
    assert f"none written: {new} not created" in err
    assert summary_of(summary)["output_status"] == "not_written"
    assert not new.exists()


def test_resuming_a_finished_json_output_warns_of_nothing_and_drops_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    ids = ids_file(tmp_path, TX[:6])
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", out,
                        "--batch-size", "2")  # fmt: skip
        assert code == 0, err
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", out,
                        "--batch-size", "2", "--resume")  # fmt: skip
    assert code == 0, err
    assert "dropped" not in err
    rows = msgspec.json.decode(out.read_bytes(), type=list[DetailedReport])
    assert tracks(rows) == tracks(DATASET.expected(transaction_ids=TX[:6]))


def test_resuming_names_the_bytes_it_drops_without_the_closing_bracket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    ids = ids_file(tmp_path, TX[:6])
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", out,
                        "--batch-size", "2")  # fmt: skip
        assert code == 0, err
        journal = out.with_name("report.json.journal")
        records = journal.read_bytes().splitlines(keepends=True)
        journal.write_bytes(b"".join(records[:-1]))  # the last batch written, not journaled
        last = json.loads(records[-1])
        data = out.read_bytes()
        previous_end = json.loads(records[-2])["end"]
        assert last["end"] == len(data) - 3  # then the closing "\n]\n"
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", out,
                        "--batch-size", "2", "--resume")  # fmt: skip
    assert code == 0, err
    assert f"resuming: {last['end'] - previous_end:,} bytes after the last whole batch" in err


def test_the_summary_names_the_journal_it_leaves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.csv"
    summary = tmp_path / "summary.json"
    ids = ids_file(tmp_path, TX[:3])
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", out,
                        "--summary-json", summary)  # fmt: skip
        assert code == 0, err
        journal = tmp_path / "report.csv.journal"
        assert journal.exists()
        assert re.search(rf"journal +{re.escape(str(journal))} \(what --resume reads\)", err)
        assert summary_of(summary)["journal"] == str(journal)
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids,
                        "--summary-json", summary)  # fmt: skip
    assert code == 0, err  # rows on stdout: no journal
    assert "journal" not in err
    assert summary_of(summary)["journal"] is None


def test_a_long_output_path_is_never_cut_in_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    folder = tmp_path / ("a-folder-with-a-long-name-" * 3)
    folder.mkdir()
    out = folder / "report.jsonl"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url,
                        "--transaction-ids", ids_file(tmp_path, TX[:2]), "-o", out)  # fmt: skip
    assert code == 0, err
    assert str(out) in err
    assert f"{out}.journal" in err
    assert "…" not in err


# --- --lang tr ---------------------------------------------------------------------------------


def test_lang_tr_translates_the_headings_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--lang", "tr",
                        "--transaction-ids", ids_file(tmp_path, [*TX[:20], "x"]),
                        "-o", tmp_path / "r.jsonl", "--skip-bad-lines")  # fmt: skip
    assert code == 0, err
    turkish = ["tamamlandı", "kimlikler", "istekler", "günlük", "iletim durumu", "hata kodu"]
    turkish += ["en sık görülen numara hata kodları", "dışarıda kalan", "atlandı: "]
    for text in turkish:
        assert text in err
    for english in ("complete", "IDs", "requests", "delivery status", "errorcode",
                    "most frequent", "left out", "skipped", " in ", "retries"):  # fmt: skip
        assert english not in err, english


@pytest.mark.parametrize("status", ["written", "unchanged", "not_written"])
@pytest.mark.parametrize("output", ["report.jsonl", "-"])
@pytest.mark.parametrize("pending", [0, 3])
@pytest.mark.parametrize("outcome", sorted(_summary._HEADLINES))
def test_every_summary_has_its_words_in_turkish(
    status: OutputStatus, output: str, pending: int, outcome: str
) -> None:
    tally = Tally()
    tally.count(2, 0)
    tally.count(3, 99)
    by_status, codes = status_rows(tally, "tr")
    summary = Summary(
        command="fetch",
        outcome=outcome,
        exit_code=1,
        output=output,
        format="jsonl",
        rows_in_output=2,
        rows_this_run=1,
        output_status=status,
        journal="report.jsonl.journal",
        duplicate_rows_skipped=1,
        by_status=by_status,
        error_codes=codes,
        ids=IdCounts(
            read=9,
            duplicates=1,
            other_shards=1,
            bad_lines=1,
            done_before=1,
            fetched=4,
            failed=1,
            without_rows=1,
        ),
        failures=[FailureGroup("HTTP 503", 1, 1)],
        failed_file="report.jsonl.failed.csv",
        still_pending=pending,
        pending_reason="not final at the deadline" if pending else None,
        bad_lines=["ids.txt:3: not a transaction ID (digits only): 'x'"],
        requests=7,
        retries=1,
        rounds=2 if pending else 0,
        follow_requests=3 if pending else 0,
        elapsed_seconds=1.0,
        rows_per_second=None if pending else 2.0,
    )
    console = Console(width=100, record=True, file=io.StringIO())
    render(summary, console, "tr")  # a word without its Turkish would be a KeyError
    text = console.export_text()
    assert "organik-report fetch: " + TURKISH[_summary._HEADLINES[outcome]] in text
    for width in (60, 80, 120, 200):
        frame = Frame(total=4, done=1, rows=2, elapsed=1.0, failed=1, lang="tr")
        assert Frame.line(frame, width).plain


# --- --help ----------------------------------------------------------------------------------


def test_the_top_level_help_shows_each_subcommands_whole_first_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from organik_async._cli._app import cli

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, command in cli.commands.items():
        first = (command.help or "").strip().splitlines()[0]
        assert f"{name} {first}" in text
    assert text.count("...") == 1  # in "[ARGS]...": no help is shortened


def test_summary_json_keeps_its_meaning_when_the_run_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.json"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "-o", tmp_path / "r.jsonl",
                        "--transaction-ids", ids_file(tmp_path, TX[:3]),
                        "--summary-json", summary)  # fmt: skip
    assert code == 0, err
    facts = summary_of(summary)
    assert facts["output_status"] == "written"
    assert facts["rounds"] == facts["follow_requests"] == 0
    assert isinstance(facts["rows_per_second"], float)
    assert os.path.exists(str(facts["journal"]))
    assert tracks(rows_of(tmp_path / "r.jsonl")) == tracks(DATASET.expected(transaction_ids=TX[:3]))
