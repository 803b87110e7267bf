"""``organik-report merge``: the outputs of a job's shards as one, each ``gsm_track_id`` once.

The inputs are real files written by the command's own sink (or by real
``fetch`` runs against the simulator); the merged output is compared byte for
byte with what the sink writes for the expected rows.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import msgspec
import pytest

from organik_async import DetailedReport
from organik_async._cli import _merge, main
from organik_async._cli._formats import OutputFormat, RowEncoder, format_for
from organik_async._cli._sink import Sink
from organik_async._cli._summary import Summary
from organik_async.testing import DEMO_API_KEY, FakeOrganikAPI
from tests.helpers.cli import DATASET, SCRIPT, TX, child_env, ids_file, rows_of, run, served
from tests.helpers.paths import DOCS

pytestmark = pytest.mark.usefixtures("server")

ROWS = DATASET.expected(transaction_ids=TX[:40])
FORMATS: tuple[OutputFormat, ...] = ("jsonl", "csv", "json")


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORGANIK_API_KEY", raising=False)
    monkeypatch.delenv("ORGANIK_BASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "120")


def _no_stdout() -> BinaryIO:
    raise AssertionError("the sink writes to a file here")


def write_output(path: Path, rows: Sequence[DetailedReport]) -> Path:
    """``rows`` as ``fetch`` writes them to ``path`` (its format from the extension)."""
    sink = Sink(
        output=path,
        fmt=format_for(str(path), None),
        stdout=_no_stdout,
        resume=None,
        track_keys=None,
        journal=False,
    )
    sink.open()
    sink.write_rows(list(rows))
    sink.close()
    return path


def encoded(rows: Sequence[DetailedReport], fmt: OutputFormat) -> bytes:
    """The bytes of a whole output of ``rows``."""
    encoder = RowEncoder(fmt)
    return encoder.header + encoder.encode(rows, 0) + encoder.footer


def summary_of(path: Path) -> Summary:
    return msgspec.json.decode(path.read_bytes(), type=Summary)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def row(
    key: int | str, status: int, finish: datetime | None = None, **more: object
) -> DetailedReport:
    fields = msgspec.structs.asdict(ROWS[0]) | {
        "gsm_track_id": key,
        "status": status,
        "finish_date": finish,
        "errorcode": 0,
    }
    return DetailedReport(**(fields | more))


# --- Each row once ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_shards_that_share_rows_merge_to_each_row_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: OutputFormat
) -> None:
    n = len(ROWS)
    shards = [
        write_output(tmp_path / "shard-1.jsonl", ROWS[: n * 6 // 10]),
        write_output(tmp_path / "shard-2.csv", ROWS[n * 4 // 10 :]),
        write_output(tmp_path / "shard-3.json", ROWS[n * 3 // 10 : n * 7 // 10]),
    ]
    out = tmp_path / f"report.{fmt}"
    code, err = run(capsys, "merge", *shards, "-o", out, "--summary-json", tmp_path / "s.json")
    assert code == 0, err
    assert out.read_bytes() == encoded(ROWS, fmt)
    summary = summary_of(tmp_path / "s.json")
    read = [n * 6 // 10, n - n * 4 // 10, n * 7 // 10 - n * 3 // 10]
    kept = [n * 6 // 10, n - n * 6 // 10, 0]
    assert [(i.path, i.format, i.rows, i.kept) for i in summary.inputs] == [
        (str(path), path.suffix[1:], r, k) for path, r, k in zip(shards, read, kept, strict=True)
    ]
    assert (summary.rows_in_output, summary.duplicate_rows_skipped) == (n, sum(read) - n)
    assert (summary.command, summary.exit_code, summary.conflicts) == ("merge", 0, 0)
    assert "organik-report merge: complete" in err
    assert f"{shards[1]}: {read[1]:,} rows (csv), {kept[1]:,} kept" in err
    assert f"{sum(read) - n:,} rows left out: another copy of their gsm_track_id was kept" in err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("out_fmt", FORMATS)
@pytest.mark.parametrize("in_fmt", FORMATS)
def test_every_field_survives_any_format_in_and_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_fmt: OutputFormat, out_fmt: OutputFormat
) -> None:
    rows = [
        row("16502030-4730-63032793", 2, datetime(2024, 3, 1, 9, 30, 5), delivery_track_id="a,b"),
        row(7, 1, None, delivery_track_id=None, is_foreign_gsm=True),
        row(8, 3, datetime(2024, 3, 1, 9, 30), errorcode=99, sms_count=3, credit_amount=0),
        row(9, 7, datetime(2024, 3, 1, 23, 59, 59), errorcode=12345, delivery_track_id="İşlem 1"),
    ]
    source = write_output(tmp_path / f"in.{in_fmt}", rows)
    out = tmp_path / f"out.{out_fmt}"
    code, err = run(capsys, "merge", source, "-o", out)
    assert code == 0, err
    assert out.read_bytes() == encoded(rows, out_fmt)


def test_rows_go_to_standard_output_as_json_lines(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    shards = [
        write_output(tmp_path / "a.csv", ROWS[:30]),
        write_output(tmp_path / "b.json", ROWS[20:50]),
    ]
    code = main(["merge", *map(str, shards)])
    captured = capsysbinary.readouterr()
    assert code == 0, captured.err
    assert captured.out == encoded(ROWS[:50], "jsonl")
    assert b"50 in standard output (jsonl)" in captured.err


def test_merging_a_merged_output_again_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_output(tmp_path / "a.jsonl", ROWS[:100])
    b = write_output(tmp_path / "b.jsonl", ROWS[50:])
    first, again = tmp_path / "merged.csv", tmp_path / "again.csv"
    assert run(capsys, "merge", a, b, "-o", first)[0] == 0
    assert run(capsys, "merge", first, b, a, "-o", again)[0] == 0
    assert again.read_bytes() == first.read_bytes() == encoded(ROWS, "csv")


# --- Copies that differ -----------------------------------------------------------------------

T = datetime(2024, 3, 1, 10, 0)
LATER = datetime(2024, 3, 1, 11, 0)


def test_of_differing_copies_the_one_furthest_along_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        "1.jsonl": [
            row(1, 0),  # then handed to the operator, then delivered (in 2.csv)
            row(2, 2, T),  # timed out later (in 2.csv)
            row(3, 1, sms_count=1),  # the same rank in 2.csv: the first copy stays
            row(4, 9, T),  # a status the client does not know, over "handed to the operator"
            row(5, 9, T),  # ... but not over a final status (in 3.json)
            row(6, 2, T),  # alike in 3.json: not a conflict
            row(8, 2, None),  # delivered with a finish date (in 3.json) wins
            row("10", 1),  # alike in 2.csv, which cannot tell "10" from 10
        ],
        "2.csv": [
            row(7, 4, T),
            row(1, 1),
            row(4, 1),
            row(2, 4, LATER),
            row(3, 1, sms_count=2),
            row(1, 2, LATER),
            row(10, 1),
        ],
        "3.json": [row(5, 3, T), row(6, 2, T), row(8, 2, T), row(1, 1)],
    }
    paths = [write_output(tmp_path / name, rows) for name, rows in files.items()]
    out = tmp_path / "report.jsonl"
    code, err = run(capsys, "merge", *paths, "-o", out, "--summary-json", tmp_path / "s.json")
    assert code == 0, err
    expected = [
        row(3, 1, sms_count=1),
        row(4, 9, T),
        row(6, 2, T),
        row("10", 1),
        row(7, 4, T),
        row(2, 4, LATER),
        row(1, 2, LATER),
        row(5, 3, T),
        row(8, 2, T),
    ]
    assert out.read_bytes() == encoded(expected, "jsonl")
    summary = summary_of(tmp_path / "s.json")
    assert summary.conflicts == 6  # 1, 2, 3, 4, 5 and 8; not 6 nor 10 (alike), nor 7 (one copy)
    assert summary.duplicate_rows_skipped == 19 - 9
    assert [(i.rows, i.kept) for i in summary.inputs] == [(8, 4), (7, 3), (4, 2)]
    assert "6 gsm_track_ids had copies that differ: kept the one furthest along" in err


# --- Inputs that cannot be merged: exit 2, nothing written ------------------------------------


def existing_output(tmp_path: Path) -> tuple[Path, bytes]:
    out = write_output(tmp_path / "report.jsonl", ROWS[:3])
    return out, out.read_bytes()


@pytest.mark.parametrize(
    ("name", "cut", "problem"),
    [
        ("s.jsonl", lambda whole: whole[:-10], "has an incomplete last row"),
        ("s.csv", lambda whole: whole[:-10], "has an incomplete last row"),
        ("s.json", lambda whole: whole[:-40], "has an incomplete last row"),
        ("s.json", lambda whole: whole[:-3], "has a JSON array that is not closed"),
        ("s.csv", lambda whole: whole[:20], "has no whole header"),
    ],
)
def test_an_input_with_a_torn_end_is_refused_and_nothing_is_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    cut: object,
    problem: str,
) -> None:
    whole = write_output(tmp_path / "whole.jsonl", ROWS[:20])
    torn = write_output(tmp_path / name, ROWS[10:30])
    torn.write_bytes(cut(torn.read_bytes()))  # type: ignore[operator]
    out, before = existing_output(tmp_path)
    summary = tmp_path / "summary.json"
    code, err = run(capsys, "merge", whole, torn, "-o", out, "--summary-json", summary)
    assert code == 2
    assert f"organik-report: {torn} {problem}: its run was interrupted or is still going" in err
    assert "(the same fetch command with --resume)" in err
    assert out.read_bytes() == before
    assert not summary.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("written", "named", "flag", "problem"),
    [
        ("jsonl", "csv", None, ":1: not a CSV file written by organik-report (other columns)"),
        ("csv", "json", None, ":1: not a JSON array written by organik-report"),
        ("json", "jsonl", None, ":1: not a report row"),
        ("csv", "jsonl", None, ":1: not a report row"),
        ("jsonl", "out", "json", ":1: not a JSON array written by organik-report"),
    ],
)
def test_an_input_in_another_format_than_declared_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    written: OutputFormat,
    named: str,
    flag: str | None,
    problem: str,
) -> None:
    source = write_output(tmp_path / f"rows.{written}", ROWS[:5])
    misnamed = source.rename(tmp_path / f"shard.{named}")
    out, before = existing_output(tmp_path)
    argv: list[str | Path] = ["merge", misnamed, "-o", out]
    if flag:
        argv += ["--input-format", flag]
    code, err = run(capsys, *argv)
    assert code == 2
    how = "--input-format" if flag else "its extension"
    assert f"{misnamed}{problem}" in err
    assert f"read as {flag or named}, as {how} says" in err
    assert out.read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "content",
    [
        b'{"status": 2, "errorcode": 0}\n',  # no gsm_track_id: the key rows are merged by
        b'{"gsm_track_id": 5, "status": 2}\n',  # a row cut down to a summary's fields
        b'{"gsm_track_id": null, "status": 2}\n',
    ],
)
def test_rows_without_a_whole_report_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    good = write_output(tmp_path / "good.jsonl", ROWS[:2])
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(good.read_bytes() + content)
    out = tmp_path / "merged.jsonl"
    code, err = run(capsys, "merge", good, bad, "-o", out)
    assert code == 2
    assert f"{bad}:3: not a report row" in err
    assert not out.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["missing.jsonl"], "File 'missing.jsonl' does not exist"),
        (["good.jsonl", "good.jsonl.journal"], "cannot tell the format of 'good.jsonl.journal'"),
        (["good.jsonl", "-o", "merged.txt"], "cannot tell the output format of 'merged.txt'"),
        (["good.jsonl", "-o", "nowhere/merged.jsonl"], "no such directory: 'nowhere'"),
        (["good.jsonl", "-o", "folder.jsonl"], "'folder.jsonl' is a directory"),
    ],
)
def test_usage_errors_name_their_argument_and_write_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    problem: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    write_output(tmp_path / "good.jsonl", ROWS[:2])
    (tmp_path / "good.jsonl.journal").write_text("{}\n")
    (tmp_path / "folder.jsonl").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run(capsys, "merge", *argv)
    assert code == 2
    assert problem in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_failed_file_given_as_an_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_output(tmp_path / "good.jsonl", ROWS[:2])
    failed = tmp_path / "good.jsonl.failed.csv"
    failed.write_text("kind,id,outcome,attempts,http_status,api_code,reason\n")
    code, err = run(capsys, "merge", good, failed, "-o", tmp_path / "m.jsonl")
    assert code == 2
    assert f"{failed} is not an output but a file kept beside one" in err
    assert not (tmp_path / "m.jsonl").exists()


# --- Writing: atomic, never half a file -------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "said"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), 1, "No space left on device"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_a_write_stopped_halfway_leaves_the_output_as_it_was(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fault: BaseException,
    code: int,
    said: str,
) -> None:
    monkeypatch.setattr(_merge, "WRITE_ROWS", 10)
    write_rows = Sink.write_rows
    calls = 0

    def failing(self: Sink, rows: list[DetailedReport]) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:  # after two batches of rows reached the file
            raise fault
        return write_rows(self, rows)

    monkeypatch.setattr(Sink, "write_rows", failing)
    shard = write_output(tmp_path / "shard.jsonl", ROWS[:50])
    out, before = existing_output(tmp_path)
    got, err = run(capsys, "merge", shard, "-o", out)
    assert (got, calls) == (code, 3)
    assert said in err
    assert out.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_an_input_that_changes_during_the_merge_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = write_output(tmp_path / "shard.jsonl", ROWS[:20])
    extra = encoded(ROWS[20:21], "jsonl")
    survey = _merge._survey

    def growing(inputs: Sequence[_merge.MergeInput]) -> object:
        found = survey(inputs)
        with shard.open("ab") as stream:  # its run is still going
            stream.write(extra)
        return found

    monkeypatch.setattr(_merge, "_survey", growing)
    out = tmp_path / "merged.jsonl"
    code, err = run(capsys, "merge", shard, "-o", out)
    assert code == 2
    assert f"{shard} changed while it was merged" in err
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_a_replaced_output_keeps_its_permissions_and_loses_its_stale_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGANIK_API_KEY", DEMO_API_KEY)
    first = tmp_path / "report-1.jsonl"
    with served(FakeOrganikAPI(DATASET)) as url:
        code, err = run(
            capsys, "fetch", "--base-url", url, "--transaction-ids", ids_file(tmp_path, TX[:6]),
            "-o", first,
        )  # fmt: skip
    assert code == 0, err
    journal = tmp_path / "report-1.jsonl.journal"
    assert journal.exists()
    first.chmod(0o600)  # phone numbers: readable by its owner only
    fetched = rows_of(first)
    second = write_output(tmp_path / "report-2.csv", ROWS[: len(fetched) + 20])
    code, err = run(capsys, "merge", first, second, "-o", first, "--summary-json", tmp_path / "s")
    assert code == 0, err
    assert first.read_bytes() == encoded(fetched + ROWS[len(fetched) : len(fetched) + 20], "jsonl")
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert not journal.exists()  # it described the file replaced: --resume must not trust it
    assert f"removed {journal}: it described the file this merge replaced" in err
    assert summary_of(tmp_path / "s").notes == [
        f"removed {journal}: it described the file this merge replaced"
    ]


def test_merge_neither_needs_nor_writes_the_api_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGANIK_API_KEY", DEMO_API_KEY)
    shards = [write_output(tmp_path / "a.json", ROWS[:9]), write_output(tmp_path / "b.csv", ROWS)]
    out = tmp_path / "merged.csv"
    code, err = run(capsys, "merge", *shards, "-o", out, "--summary-json", tmp_path / "s.json")
    assert code == 0, err
    for path in tmp_path.iterdir():
        assert DEMO_API_KEY.encode() not in path.read_bytes(), path
    assert DEMO_API_KEY not in err
    monkeypatch.delenv("ORGANIK_API_KEY")
    assert run(capsys, "merge", *shards, "-o", out)[0] == 0  # no key needed


def test_the_summary_speaks_turkish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shards = [
        write_output(tmp_path / "a.jsonl", ROWS[:30]),
        write_output(tmp_path / "b.jsonl", ROWS[20:40]),
    ]
    code, err = run(capsys, "merge", *shards, "-o", tmp_path / "m.jsonl", "--lang", "tr")
    assert code == 0, err
    assert "organik-report merge: tamamlandı" in err
    assert f"girdiler  {shards[0]}: 30 satır (jsonl), 30 tutuldu" in err
    assert "10 satır dışarıda kaldı: gsm_track_id'lerinin başka bir kopyası tutuldu" in err
    assert "iletim durumu" in err


def test_quiet_says_nothing_on_success(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shard = write_output(tmp_path / "a.jsonl", ROWS[:3])
    assert run(capsys, "merge", "-q", shard, "-o", tmp_path / "m.json") == (0, "")


# --- End to end: two shard processes, then merge ----------------------------------------------


@pytest.mark.slow
def test_two_shard_processes_merge_to_every_row_once(tmp_path: Path) -> None:
    env = child_env(COLUMNS="160")
    transactions = TX[:60]
    expected = DATASET.expected(transaction_ids=transactions)
    # Every row is reachable twice, by its transaction and by its own GSM track ID; the two
    # IDs of a row land in the same shard only by chance, so most rows reach both shards.
    ids = tmp_path / "ids.csv"
    ids.write_text(
        "kind,id\n"
        + "".join(f"transaction_id,{t}\n" for t in transactions)
        + "".join(f"gsm_track_id,{r.gsm_track_id}\n" for r in expected),
        encoding="utf-8",
    )
    outputs = [tmp_path / "report-1.csv", tmp_path / "report-2.json"]
    assert SCRIPT.exists(), f"install the package first: {SCRIPT} is missing"
    with served(FakeOrganikAPI(DATASET)) as url:
        commands = [
            [str(SCRIPT), "fetch", "--base-url", url, "--ids", str(ids),
             "--shard", f"{k}/2", "--resume", "-q", "-o", str(out)]
            for k, out in enumerate(outputs, 1)
        ]  # fmt: skip
        shards = [subprocess.Popen(c, env=env, stderr=subprocess.PIPE) for c in commands]
        for shard in shards:  # both run at once
            _, err = shard.communicate(timeout=120)
            assert shard.returncode == 0, err
    merged = tmp_path / "report.jsonl"
    done = subprocess.run(
        [str(SCRIPT), "merge", *map(str, outputs), "-o", str(merged),
         "--summary-json", str(tmp_path / "s.json")],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    decoder = msgspec.json.Decoder(DetailedReport)
    rows = [decoder.decode(line) for line in merged.read_bytes().splitlines()]
    assert sorted(rows, key=str) == sorted(expected, key=str)  # every row, once
    summary = summary_of(tmp_path / "s.json")
    read = [item.rows for item in summary.inputs]
    assert min(read) > 0
    assert sum(read) - len(expected) == summary.duplicate_rows_skipped > len(expected) // 4
    assert summary.conflicts == 0  # the same simulator gave both copies


@pytest.mark.slow
def test_the_merge_line_of_the_recipes_runs_as_written(tmp_path: Path) -> None:
    page = DOCS / "shared-limits.md"
    (line,) = [ln for ln in page.read_text().splitlines() if ln.startswith("organik-report merge")]
    n = len(ROWS)
    for k, (low, high) in enumerate([(0, n // 3), (n // 4, n // 2), (n // 2, n), (0, 9)], 1):
        write_output(tmp_path / f"report-{k}.jsonl", ROWS[low:high])
    (tmp_path / "report-1.jsonl.journal").write_text('{"start": true}\n')  # beside the shards,
    (tmp_path / "report-2.jsonl.failed.csv").write_text("kind,id\n")  # left out by the glob
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGANIK_", "FORCE_"))}
    env["PATH"] = f"{SCRIPT.parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["sh", "-c", line], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.jsonl").read_bytes() == encoded(ROWS, "jsonl")


def test_a_failed_file_beside_an_input_is_named_in_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = [
        write_output(tmp_path / f"report-{k}.csv", ROWS[k * 10 : k * 10 + 10]) for k in (1, 2)
    ]
    failed = tmp_path / "report-2.csv.failed.csv"
    failed.write_text("kind,id,outcome,attempts,http_status,api_code,reason\n")
    code, err = run(
        capsys, "merge", *shards, "-o", tmp_path / "m.csv", "--summary-json", tmp_path / "s"
    )
    assert code == 0, err
    note = f"{failed} is there: its run left IDs unfetched, whose rows are not in this merge"
    assert note in err
    (said,) = summary_of(tmp_path / "s").notes
    assert said.startswith(note)


def test_a_csv_saved_again_in_another_encoding_is_refused_not_garbled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shard = write_output(tmp_path / "report.csv", [row(1, 2, T, delivery_track_id="İşlem")])
    shard.write_bytes(shard.read_text(encoding="utf-8").encode("windows-1254"))  # Excel did it
    code, err = run(capsys, "merge", shard, "-o", tmp_path / "m.jsonl")
    assert code == 2
    assert f"{shard}:2: not UTF-8 text; read as csv, as its extension says" in err
    assert not (tmp_path / "m.jsonl").exists()
