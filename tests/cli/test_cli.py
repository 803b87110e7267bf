"""``organik-report``, in-process, against the simulator over real TCP.

``main(argv)`` runs exactly what the console script runs; the simulator is
served from a thread (a blocking portal), so these tests are plain sync
tests. The job itself is also run on asyncio and trio (``run_job``).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import anyio.from_thread
import msgspec
import pytest
from rich.console import Console

from organik_async import DeliveryStatus, __version__
from organik_async._cli import main
from organik_async._cli._inputs import InputSet
from organik_async._cli._job import ClientOptions, Job, Ui, run_job
from organik_async._cli._summary import Summary
from organik_async.testing import (
    DEMO_API_KEY,
    Dataset,
    FakeOrganikAPI,
    Fault,
    ManualClock,
)
from tests.helpers.cli import DATASET, TX, ids_file, rows_of, run, served, tracks
from tests.helpers.provider import OTHER_KEY

pytestmark = pytest.mark.usefixtures("api_key", "server")


def test_rows_for_a_file_of_ids_are_written_once_in_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOrganikAPI(DATASET)
    out = tmp_path / "report.jsonl"
    with served(fake) as url:
        code, err = run(
            capsys, "fetch", "--base-url", url, "--transaction-ids", ids_file(tmp_path, TX[:30]),
            "-o", out, "--batch-size", "4", "--concurrency", "2",
        )  # fmt: skip
    assert code == 0, err
    rows = rows_of(out)
    assert sorted(rows, key=str) == sorted(DATASET.expected(transaction_ids=TX[:30]), key=str)
    assert fake.stats.max_ids_per_request == 4
    assert fake.stats.peak_in_flight <= 2
    assert "organik-report fetch: complete" in err
    assert f"{len(rows):,} in {out} (jsonl)" in err
    assert "delivered" in err
    assert not (tmp_path / "report.jsonl.failed.csv").exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_each_output_format_holds_the_same_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    expected = DATASET.expected(transaction_ids=TX[:12])
    out = tmp_path / f"report.{fmt}"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(
            capsys, "fetch", "--base-url", url, "--transaction-ids", ids_file(tmp_path, TX[:12]),
            "-o", out, "--batch-size", "5",
        )  # fmt: skip
    assert code == 0, err
    if fmt == "csv":
        with out.open(newline="", encoding="utf-8") as stream:
            records = list(csv.DictReader(stream))
        assert sorted(r["gsm_track_id"] for r in records) == tracks(expected)
        by_track = {str(row.gsm_track_id): row for row in expected}
        for record in records:
            row = by_track[record["gsm_track_id"]]
            assert record["create_date"] == row.create_date.isoformat()
            assert record["status"] == str(row.status)
            assert record["status_name"] == DeliveryStatus(row.status).name
            assert record["failure_reason"] == (row.failure_reason or "")
    else:
        assert sorted(rows_of(out), key=str) == sorted(expected, key=str)


def test_the_same_format_can_be_asked_for_whatever_the_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.txt"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, _ = run(
            capsys, "fetch", "--base-url", url, "--transaction-ids", ids_file(tmp_path, TX[:2]),
            "-o", out, "--format", "csv",
        )  # fmt: skip
    assert code == 0
    assert out.read_text().startswith("gsm,transaction_id,gsm_track_id")


def test_rows_are_unique_across_id_kinds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = DATASET.expected(transaction_ids=TX[:6])
    tracks_file = ids_file(tmp_path, [r.gsm_track_id for r in expected], "gsm.txt")
    delivery = ids_file(tmp_path, {r.delivery_track_id for r in expected}, "delivery.txt")
    out = tmp_path / "report.jsonl"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(
            capsys, "fetch", "--base-url", url, "--transaction-ids", ids_file(tmp_path, TX[:6]),
            "--gsm-track-ids", tracks_file, "--delivery-track-ids", delivery, "-o", out,
        )  # fmt: skip
    assert code == 0, err
    assert tracks(rows_of(out)) == tracks(expected)
    assert f"{2 * len(expected):,} rows skipped: already written" in err


def test_failed_ids_go_to_a_file_with_their_reasons_and_are_fetched_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOrganikAPI(
        DATASET,
        faults=[Fault.status(400, on_requests={2}), Fault.provider_error(97, on_requests={3})],
    )
    ids = ids_file(tmp_path, TX[:8])
    out = tmp_path / "report.jsonl"
    failed = tmp_path / "report.jsonl.failed.csv"
    command: list[str | Path] = ["fetch", "--base-url", "URL", "--transaction-ids", ids, "-o", out,
               "--batch-size", "2", "--concurrency", "1"]  # fmt: skip
    with served(fake) as url:
        command[2] = url
        code, err = run(capsys, *command)
        assert code == 1, err
        records = list(csv.DictReader(io.StringIO(failed.read_text(encoding="utf-8"))))
        assert [(r["kind"], r["id"], r["outcome"]) for r in records] == [
            ("transaction_id", str(v), "failed") for v in TX[2:6]
        ]
        assert records[0]["http_status"] == "400"
        assert records[0]["reason"] == "HTTP 400 Bad Request"
        assert records[2]["api_code"] == "97"
        assert records[2]["reason"].startswith("provider error 97 (invalid request body format)")
        assert "HTTP 400 Bad Request" in err
        assert "provider error 97" in err
        assert f"failed IDs, with their reasons: {failed}" in err
        # The failed file is input: fetch reads it straight back.
        shutil.copy(failed, tmp_path / "retry.csv")
        code, err = run(capsys, "fetch", "--base-url", url, "--ids", tmp_path / "retry.csv",
                        "-o", tmp_path / "retry.jsonl")  # fmt: skip
        assert code == 0, err
        assert tracks(rows_of(tmp_path / "retry.jsonl")) == tracks(
            DATASET.expected(transaction_ids=TX[2:6])
        )
        # Or the same command with --resume fetches what failed; the failed file goes.
        code, err = run(capsys, *command, "--resume")
        assert code == 0, err
    assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:8]))
    assert not failed.exists()


def test_a_run_of_one_request_that_fails_still_writes_its_failed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(400)])
    with served(fake) as url:
        code, _err = run(capsys, "fetch", "--base-url", url, "--transaction-ids",
                        ids_file(tmp_path, TX[:3]), "-o", tmp_path / "r.jsonl")  # fmt: skip
    assert code == 1
    failed = (tmp_path / "r.jsonl.failed.csv").read_text()
    assert [line.split(",")[1] for line in failed.splitlines()[1:]] == [str(v) for v in TX[:3]]
    assert not (tmp_path / "r.jsonl").exists()  # no answer proved the URL good


def test_failed_ids_go_where_failed_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = tmp_path / "custom.csv"
    with served(FakeOrganikAPI(DATASET, faults=[Fault.status(400)])) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids",
                        ids_file(tmp_path, TX[:1]), "-o", tmp_path / "r.jsonl",
                        "--failed", custom)  # fmt: skip
    assert code == 1
    assert custom.read_text().splitlines()[1].startswith(f"transaction_id,{TX[0]},failed")
    assert not (tmp_path / "r.jsonl.failed.csv").exists()
    assert f"failed IDs, with their reasons: {custom}" in err


def test_a_wrong_key_leaves_an_existing_output_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report.jsonl"
    out.write_bytes(b"yesterday's report\n")
    monkeypatch.setenv("ORGANIK_API_KEY", OTHER_KEY)
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids",
                        ids_file(tmp_path, TX[:50]), "-o", out)  # fmt: skip
    assert code == 3
    assert "authentication refused: provider error 99" in err
    assert out.read_bytes() == b"yesterday's report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.txt", "report.jsonl"]
    assert OTHER_KEY not in err


@pytest.mark.parametrize(("key", "message"), [("", "set ORGANIK_API_KEY"), ("abc", "32 hex")])
def test_a_missing_or_malformed_key_is_refused_before_sending(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    message: str,
) -> None:
    monkeypatch.setenv("ORGANIK_API_KEY", key)
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids",
                        ids_file(tmp_path, TX[:2]))  # fmt: skip
    assert code == 3
    assert message in err
    assert fake.stats.requests == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "'--concurrency'"),
        (["--batch-size", "0"], "'--batch-size'"),
        (["--retries", "-1"], "'--retries'"),
        (["--rate-limit", "0"], "'--rate-limit'"),
        (["--timeout", "-1"], "'--timeout'"),
        (["--shard", "3/2"], "'--shard'"),
        (["--shard", "x"], "'--shard'"),
        (["--format", "xml"], "'--format'"),
        (["--request-format", "yaml"], "'--request-format'"),
        (["--response-format", "yaml"], "'--response-format'"),
        (["--lang", "de"], "'--lang'"),
        (["--input-format", "tsv"], "'--input-format'"),
        (["-o", "report.txt"], "'-o' / '--output'"),
        (["-o", "no/such/dir/r.jsonl"], "no such directory"),
        (["-o", ".", "--format", "csv"], "'.' is a directory"),
        (["-o", "r.jsonl", "--failed", "no/such/f.csv"], "'--failed'"),
        (["--base-url", "ftp://example.com"], "'--base-url'"),
        (["--resume"], "'--resume'"),
        (["--column", "x"], "--column applies to CSV inputs"),
        (["--transaction-ids", "missing.txt"], "'--transaction-ids'"),
        (["--api-key", "x"], "No such option '--api-key'"),
        (["--poll-interval", "1"], "'--poll-interval': applies only with --until-final"),
        (["--deadline", "1"], "'--deadline': applies only with --until-final"),
        (["--until-final", "--poll-interval", "0"], "'--poll-interval'"),
        (["--until-final", "--deadline", "-1"], "'--deadline'"),
        (["--until-final", "--deadline", "x"], "'--deadline'"),
        (["--until-final", "-o", "r.jsonl", "--resume"], "cannot be resumed"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_its_flag(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids",
                        ids_file(tmp_path, TX[:2]), *args)  # fmt: skip
    assert code == 2
    assert message in err
    assert fake.stats.requests == 0


def test_no_input_at_all_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "fetch")
    assert code == 2
    assert "give IDs with --transaction-ids" in err


def test_bad_lines_and_empty_files_stop_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ids_file(tmp_path, [TX[0], "14096618x", "1.5e7", "-5"])
    empty = ids_file(tmp_path, [], "empty.txt")
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", bad)
        assert code == 2
        assert f"{bad}:2: not a transaction ID (digits only): '14096618x'" in err
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", empty)
        assert code == 2
        assert "no IDs in the input" in err
        assert fake.stats.requests == 0
        out = tmp_path / "r.jsonl"
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", bad,
                        "--skip-bad-lines", "-o", out)  # fmt: skip
    assert code == 0
    assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:1]))
    assert "left out: 3 bad lines skipped" in err
    assert f"skipped {bad}:3: not a transaction ID (digits only): '1.5e7'" in err


def test_a_csv_column_is_read_as_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "\ufeffname,sent_id\n" + "".join(f"x,{v}\n" for v in TX[:5]), encoding="utf-8"
    )
    out = tmp_path / "r.jsonl"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", export,
                        "--column", "sent_id", "-o", out)  # fmt: skip
    assert code == 0, err
    assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:5]))


def test_input_format_lines_reads_a_csv_named_file_as_one_id_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ids_file(tmp_path, ["transaction_id", *TX[:3]], "ids.csv")
    out = tmp_path / "r.jsonl"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids,
                        "--input-format", "lines", "-o", out)  # fmt: skip
        assert code == 2  # read as lines, the header is a bad line
        assert f"{ids}:1: not a transaction ID" in err
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids, "-o", out)
    assert code == 0, err  # read as CSV: the header names the column
    assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:3]))


def test_the_demo_takes_the_options_of_fetch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORGANIK_API_KEY")
    out = tmp_path / "demo.csv"
    code, err = run(capsys, "demo", "--rows", "1500", "--seed", "4", "-o", out,
                    "--batch-size", "50", "--concurrency", "3", "--retries", "5",
                    "--summary-json", tmp_path / "s.json")  # fmt: skip
    assert code == 0, err
    with out.open(newline="") as stream:
        written = [r["gsm_track_id"] for r in csv.DictReader(stream)]
    assert sorted(written) == tracks(list(Dataset.generate(1500, seed=4)))
    summary = msgspec.json.decode((tmp_path / "s.json").read_bytes(), type=Summary)
    assert (summary.command, summary.rows_in_output) == ("demo", 1500)
    assert (summary.retries, summary.refusals) == (3, 1)  # the demo's faults, one a refusal


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"organik-report {__version__}\n"
    assert main(["fetch", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "--transaction-ids",
        "--resume",
        "--shard",
        "--summary-json",
        "ORGANIK_BASE_URL",
    ):
        assert option in text


def test_summary_json_and_turkish_descriptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary_file = tmp_path / "summary.json"
    unknown = 999_999_999
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(
            capsys, "fetch", "--base-url", url, "-o", tmp_path / "r.csv", "--lang", "tr",
            "--transaction-ids", ids_file(tmp_path, [*TX[:20], unknown]),
            "--summary-json", summary_file,
        )  # fmt: skip
    assert code == 0, err
    summary = msgspec.json.decode(summary_file.read_bytes(), type=Summary)
    expected = DATASET.expected(transaction_ids=TX[:20])
    assert summary.rows_in_output == summary.rows_this_run == len(expected)
    assert sum(s.rows for s in summary.by_status) == len(expected)
    delivered = next(s for s in summary.by_status if s.status == 2)
    assert delivered.description == "alıcıya iletildi"
    assert delivered.rows == sum(1 for r in expected if r.status == 2)
    assert summary.ids is not None
    assert summary.ids.without_rows == 1
    assert summary.exit_code == 0
    assert summary.outcome == "complete"
    assert "alıcıya iletildi" in err


def test_verbose_logs_retries_and_requests_without_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.rate_limited(retry_after=0, on_requests={1})])
    with served(fake) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "-v", "--transaction-ids",
                        ids_file(tmp_path, TX[:2]), "-o", tmp_path / "a.jsonl")  # fmt: skip
        assert code == 0
        assert "retrying POST" in err
        assert "/v2/***/detailedreport" in err
        code, err = run(capsys, "fetch", "--base-url", url, "-vv", "--transaction-ids",
                        ids_file(tmp_path, TX[:2]), "-o", tmp_path / "b.jsonl")  # fmt: skip
        assert code == 0
        assert "sends through aiohttp" in err
        assert "ids=2" in err
        code, err = run(capsys, "fetch", "--base-url", url, "-vv", "--http-backend", "httpx",
                        "--transaction-ids", ids_file(tmp_path, TX[:2]),
                        "-o", tmp_path / "c.jsonl")  # fmt: skip
        assert code == 0
        assert "HTTP Request: POST" in err  # httpx's own line, masked too
        assert "ids=2" in err
    assert DEMO_API_KEY not in err


def test_quiet_says_nothing_on_success(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "-q", "--transaction-ids",
                        ids_file(tmp_path, TX[:2]), "-o", tmp_path / "a.jsonl")  # fmt: skip
    assert (code, err) == (0, "")


def test_xml_both_ways_gives_the_same_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        for request, response in (("xml", "xml"), ("json", "xml")):
            out = tmp_path / f"{request}-{response}.jsonl"
            code, err = run(
                capsys, "fetch", "--base-url", url, "--request-format", request,
                "--response-format", response, "--transaction-ids", ids_file(tmp_path, TX[:4]),
                "-o", out,
            )  # fmt: skip
            assert code == 0, err
            assert sorted(rows_of(out), key=str) == sorted(
                fake.expected(transaction_ids=TX[:4], response_format="xml"), key=str
            )


@pytest.mark.slow
def test_retries_and_timeout_reach_the_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ids_file(tmp_path, TX[:2])
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        fake.faults[:] = [Fault.status(502, on_requests={1, 2})]
        code, _ = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids,
                      "--retries", "1", "-o", tmp_path / "a.jsonl")  # fmt: skip
        assert code == 1
        assert fake.stats.requests == 2
        fake.stats.reset()
        code, _ = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids,
                      "--retries", "2", "-o", tmp_path / "b.jsonl")  # fmt: skip
        assert code == 0
        assert fake.stats.requests == 3
        fake.stats.reset()
        fake.faults[:] = [Fault.latency(3.0)]
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids,
                        "--timeout", "0.2", "--retries", "0",
                        "-o", tmp_path / "c.jsonl")  # fmt: skip
    assert code == 1
    assert "timed out (" in err  # ReadTimeout on httpx, a TimeoutError on aiohttp


@pytest.mark.slow
def test_rate_limit_spaces_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with served(FakeOrganikAPI(DATASET)) as url:
        started = time.monotonic()
        code, _ = run(capsys, "fetch", "--base-url", url, "--transaction-ids",
                      ids_file(tmp_path, TX[:6]), "--batch-size", "1", "--rate-limit", "20",
                      "-o", tmp_path / "a.jsonl")  # fmt: skip
        elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed >= 5 / 20 * 0.9  # six requests at 20/s: at least five gaps of 50 ms


def test_shards_together_fetch_the_input_exactly_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ids_file(tmp_path, TX[:40])
    fake = FakeOrganikAPI(DATASET)
    outputs = [tmp_path / f"part-{k}.jsonl" for k in (1, 2, 3)]
    with served(fake) as url:
        for k, out in enumerate(outputs, 1):
            code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", ids,
                            "--shard", f"{k}/3", "-o", out)  # fmt: skip
            assert code == 0, err
            assert "in other shards" in err
    parts = [rows_of(out) for out in outputs]
    assert all(parts)
    assert tracks([row for part in parts for row in part]) == tracks(
        DATASET.expected(transaction_ids=TX[:40])
    )


def test_rows_can_go_to_stdout(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with served(FakeOrganikAPI(DATASET)) as url:
        code = main(["fetch", "--base-url", url, "--transaction-ids",
                     str(ids_file(tmp_path, TX[:3])), "--format", "csv"])  # fmt: skip
    captured = capsysbinary.readouterr()
    assert code == 0
    lines = captured.out.decode().splitlines()
    assert lines[0].startswith("gsm,transaction_id")
    assert len(lines) == 1 + len(DATASET.expected(transaction_ids=TX[:3]))
    assert b"standard output (csv)" in captured.err


def test_with_stdout_output_failed_ids_go_to_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with served(FakeOrganikAPI(DATASET, faults=[Fault.status(400)])) as url:
        code, _ = run(capsys, "fetch", "--base-url", url, "--transaction-ids",
                      ids_file(tmp_path, TX[:1]))  # fmt: skip
    assert code == 1
    assert (
        (tmp_path / "organik-report.failed.csv")
        .read_text()
        .splitlines()[1]
        .startswith(f"transaction_id,{TX[0]},failed,1,400")
    )


def test_base_url_comes_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        monkeypatch.setenv("ORGANIK_BASE_URL", url)
        code, _ = run(capsys, "fetch", "--transaction-ids", ids_file(tmp_path, TX[:1]),
                      "-o", tmp_path / "a.jsonl")  # fmt: skip
    assert code == 0
    assert fake.stats.requests == 1


# --- Resume --------------------------------------------------------------------------------


def drop_last_journal_records(journal: Path, count: int) -> None:
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-count]))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_resume_refetches_a_batch_written_but_not_journaled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """A crash between writing a batch's rows and journaling it: no row twice."""
    out = tmp_path / f"report.{fmt}"
    ids = ids_file(tmp_path, TX[:10])
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        command: list[str | Path] = ["fetch", "--base-url", url, "--transaction-ids", ids,
                                     "-o", out, "--batch-size", "2",
                                     "--concurrency", "1"]  # fmt: skip
        assert run(capsys, *command)[0] == 0
        complete = out.read_bytes()
        drop_last_journal_records(tmp_path / f"report.{fmt}.journal", 2)
        with out.open("ab") as stream:
            stream.write(complete[-7:-3])  # and a torn write after it
        fake.stats.reset()
        code, err = run(capsys, *command, "--resume")
    assert code == 0, err
    assert fake.stats.requests == 2
    assert out.read_bytes() == complete
    assert "bytes after the last whole batch" in err
    assert f"{len(DATASET.expected(transaction_ids=TX[:10])):,} in {out}" in err


def test_resume_refetches_batches_whose_rows_the_output_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A power loss can leave the journal ahead of the output's data: the journal
    is believed only as far as the output bears it out."""
    out = tmp_path / "report.jsonl"
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        command: list[str | Path] = ["fetch", "--base-url", url, "--transaction-ids",
                                     ids_file(tmp_path, TX[:10]), "-o", out,
                                     "--batch-size", "1", "--concurrency", "1"]  # fmt: skip
        assert run(capsys, *command)[0] == 0
        complete = out.read_bytes()
        lines = complete.splitlines(keepends=True)
        out.write_bytes(b"".join(lines[: len(lines) // 2]) + b"\0" * 100)
        fake.stats.reset()
        code, err = run(capsys, *command, "--resume")
    assert code == 0, err
    assert sorted(out.read_bytes().splitlines()) == sorted(complete.splitlines())
    assert 0 < fake.stats.requests < 10


def test_resume_of_a_complete_job_fetches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.jsonl"
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        command: list[str | Path] = ["fetch", "--base-url", url, "-o", out, "--transaction-ids",
                   ids_file(tmp_path, TX[:5])]  # fmt: skip
        assert run(capsys, *command)[0] == 0
        before = out.read_bytes()
        fake.stats.reset()
        code, err = run(capsys, *command, "--resume")
    assert code == 0
    assert fake.stats.requests == 0
    assert out.read_bytes() == before
    assert "nothing to fetch: every ID is already in the output" in err
    assert "already in the output (resumed)" in err


def test_resume_adds_new_ids_to_an_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    with served(FakeOrganikAPI(DATASET)) as url:
        first: list[str | Path] = ["fetch", "--base-url", url, "-o", out, "--transaction-ids",
                 ids_file(tmp_path, TX[:5], "a.txt")]  # fmt: skip
        assert run(capsys, *first)[0] == 0
        code, _ = run(capsys, "fetch", "--base-url", url, "-o", out, "--resume",
                      "--transaction-ids", ids_file(tmp_path, TX[:9], "b.txt"))  # fmt: skip
    assert code == 0
    assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:9]))


def test_resume_refuses_an_output_it_knows_nothing_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.jsonl"
    out.write_text("something\n")
    code, err = run(capsys, "fetch", "-o", out, "--resume", "--transaction-ids",
                    ids_file(tmp_path, TX[:1]))  # fmt: skip
    assert code == 2
    assert "has no journal" in err
    assert out.read_text() == "something\n"


def test_resume_refuses_another_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.out"
    with served(FakeOrganikAPI(DATASET)) as url:
        command: list[str | Path] = ["fetch", "--base-url", url, "-o", out, "--transaction-ids",
                   ids_file(tmp_path, TX[:1])]  # fmt: skip
        assert run(capsys, *command, "--format", "csv")[0] == 0
        code, err = run(capsys, *command, "--format", "json", "--resume")
    assert code == 2
    assert "it was written as csv, not json (pass --format csv)" in err


def test_resume_after_mixed_kinds_keeps_rows_unique(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.csv"
    expected = DATASET.expected(transaction_ids=TX[:4])
    with served(FakeOrganikAPI(DATASET)) as url:
        assert run(capsys, "fetch", "--base-url", url, "-o", out, "--transaction-ids",
                   ids_file(tmp_path, TX[:4]))[0] == 0  # fmt: skip
        gsm = ids_file(tmp_path, [r.gsm_track_id for r in expected], "gsm.txt")
        code, err = run(capsys, "fetch", "--base-url", url, "-o", out, "--resume",
                        "--gsm-track-ids", gsm)  # fmt: skip
    assert code == 0, err
    with out.open(newline="") as stream:
        written = [r["gsm_track_id"] for r in csv.DictReader(stream)]
    assert sorted(written) == tracks(expected)


# --- summarize -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_summarize_reads_an_output_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    out = tmp_path / f"report.{fmt}"
    expected = DATASET.expected(transaction_ids=TX[:10])
    with served(FakeOrganikAPI(DATASET)) as url:
        assert run(capsys, "fetch", "--base-url", url, "-o", out, "--transaction-ids",
                   ids_file(tmp_path, TX[:10]))[0] == 0  # fmt: skip
    code, err = run(capsys, "summarize", out, "--summary-json", tmp_path / "s.json")
    assert code == 0
    summary = msgspec.json.decode((tmp_path / "s.json").read_bytes(), type=Summary)
    assert summary.rows_in_output == len(expected)
    assert {s.status: s.rows for s in summary.by_status if s.rows} == {
        status: sum(1 for r in expected if r.status == status)
        for status in {r.status for r in expected}
    }
    assert "organik-report summarize: summary" in err


def test_summarize_names_the_line_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"gsm_track_id": 1, "status": 2}\nnot json\n')
    code, err = run(capsys, "summarize", path)
    assert code == 2
    assert f"{path}:2: not a report row" in err


# --- The job on any backend --------------------------------------------------------------


@pytest.mark.anyio
async def test_the_job_runs_on_asyncio_and_trio(tmp_path: Path) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.status(503, on_requests={2})])
    out = tmp_path / "report.jsonl"
    inputs = InputSet.of({"transaction_ids": TX[:10], "gsm_track_ids": [1, 2]})
    job = Job(
        command="fetch",
        inputs=inputs,
        output=out,
        fmt="jsonl",
        failed_path=tmp_path / "failed.csv",
        resume=False,
        api_key=fake.api_key,
        client=ClientOptions(
            batch_size=3, extra={"transport": fake.transport(), "backoff_base": 0}
        ),
        rerun="organik-report fetch --resume",
    )
    console = Console(file=io.StringIO(), width=100)
    with anyio.fail_after(30):
        code = await run_job(job, Ui(console), handle_signals=False)
    assert code == 0
    assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:10]))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "2 matched no row" in text
    assert "(1 retried, 0 refused)" in text


def test_key_is_never_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGANIK_API_KEY", OTHER_KEY)
    fake = FakeOrganikAPI(
        DATASET,
        api_keys=[OTHER_KEY],
        faults=[Fault.status(500, retry_after=0, on_requests={2, 3, 4, 5})],
    )
    with served(fake) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "-vv", "--retries", "1",
                        "--transaction-ids", ids_file(tmp_path, TX[:6]), "--batch-size", "2",
                        "--concurrency", "1", "-o", tmp_path / "r.csv",
                        "--summary-json", tmp_path / "s.json")  # fmt: skip
    assert code == 1
    written = [p.read_bytes() for p in tmp_path.iterdir()]
    assert len(written) >= 5  # ids, output, journal, failed file, summary
    for data in [*written, err.encode()]:
        assert OTHER_KEY.encode() not in data
        assert OTHER_KEY.upper().encode() not in data
    assert os.environ["ORGANIK_API_KEY"] == OTHER_KEY


@contextmanager
def time_passing(clock: ManualClock, *, speed: float) -> Iterator[None]:
    """The simulator's clock runs ``speed`` times as fast as the real one, from a thread."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.01):
            clock.advance(0.01 * speed)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()


@pytest.mark.slow
def test_until_final_writes_every_row_once_when_final(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock()
    # Pending rows become final 0.5 to 1 simulated seconds in: 0.25 to 0.5 s of real time.
    fake = FakeOrganikAPI(DATASET, finalize_after=(0.5, 1.0), clock=clock)
    expected = DATASET.expected(transaction_ids=TX[:30])
    pending = [row for row in expected if not row.is_final]
    assert pending  # the dataset has pending rows to follow
    out = tmp_path / "report.jsonl"
    with served(fake) as url, time_passing(clock, speed=2):
        code, err = run(
            capsys, "fetch", "--base-url", url, "--transaction-ids", ids_file(tmp_path, TX[:30]),
            "-o", out, "--until-final", "--poll-interval", "0.05", "--deadline", "30",
        )  # fmt: skip
    assert code == 0, err
    rows = rows_of(out)
    assert tracks(rows) == tracks(expected)  # each row once
    assert all(row.is_final for row in rows)
    assert "pending rows until final" in err
    assert "organik-report fetch: complete" in err
    delivered = sum(row.status == DeliveryStatus.DELIVERED for row in rows)
    assert delivered > sum(row.status == DeliveryStatus.DELIVERED for row in expected)
    assert f"{delivered:,}" in err  # the summary counts the followed rows by status
    assert not (tmp_path / "report.jsonl.journal").exists()  # not resumable, so no journal
    assert not (tmp_path / "report.jsonl.failed.csv").exists()


@pytest.mark.slow
def test_rows_still_pending_at_the_deadline_go_to_the_failed_file_and_finish_from_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock()
    fake = FakeOrganikAPI(DATASET, finalize_after=3600, clock=clock)
    expected = DATASET.expected(transaction_ids=TX[:30])
    pending = [row for row in expected if not row.is_final]
    out = tmp_path / "report.csv"
    failed = tmp_path / "report.csv.failed.csv"
    with served(fake) as url:
        code, err = run(
            capsys, "fetch", "--base-url", url, "--transaction-ids", ids_file(tmp_path, TX[:30]),
            "-o", out, "--until-final", "--poll-interval", "0.05", "--deadline", "0.3",
        )  # fmt: skip
        assert code == 1, err
        with out.open(newline="", encoding="utf-8") as stream:
            written = [r["gsm_track_id"] for r in csv.DictReader(stream)]
        assert sorted(written) == tracks([row for row in expected if row.is_final])
        records = list(csv.DictReader(io.StringIO(failed.read_text(encoding="utf-8"))))
        assert sorted(r["id"] for r in records) == tracks(pending)
        assert {(r["kind"], r["outcome"], r["reason"]) for r in records} == {
            ("gsm_track_id", "still_pending", "not final at the deadline")
        }
        assert f"{len(pending):,} rows still pending (not final at the deadline)" in err
        assert "finished with rows still pending" in err
        # Later, the failed file fed back finishes them.
        clock.advance(3600)
        retry = tmp_path / "retry.jsonl"
        code, err = run(capsys, "fetch", "--base-url", url, "--ids", failed, "-o", retry,
                        "--until-final", "--failed", tmp_path / "f2.csv")  # fmt: skip
    assert code == 0, err
    rows = rows_of(retry)
    assert tracks(rows) == tracks(pending)
    assert all(row.is_final for row in rows)
