"""organik-report's inputs and output formats, without the network.

Every input is read right or refused with ``FILE:LINE: reason``; shards
split an input exactly; what the writer writes, the reader reads back.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organik_async import DetailedReport
from organik_async._cli._formats import CSV_FIELDS, RowEncoder, RowReader, format_for
from organik_async._cli._inputs import (
    IdColumn,
    InputError,
    Shard,
    Source,
    parse_id,
    read_inputs,
    shard_of,
)


def write(tmp_path: Path, name: str, data: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return str(path)


def ids(column: IdColumn) -> list[int | str]:
    return list(column)


def test_blank_lines_surrounding_spaces_and_a_bom_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "tx.txt", b"\xef\xbb\xbf14094857\r\n\n  16334701  \n\t\n99\n")
    inputs = read_inputs([Source("transaction_ids", path)])
    assert ids(inputs.columns["transaction_ids"]) == [14094857, 16334701, 99]
    assert inputs.ids_read == 3
    assert inputs.bad_line_count == 0


@pytest.mark.parametrize(
    ("kind", "text", "reason"),
    [
        ("transaction_ids", "14096618x", "not a transaction ID (digits only): '14096618x'"),
        ("transaction_ids", "1.5e7", "not a transaction ID (digits only): '1.5e7'"),
        ("transaction_ids", "-5", "not a transaction ID (digits only): '-5'"),
        ("transaction_ids", "+5", "not a transaction ID (digits only): '+5'"),
        ("transaction_ids", "١٢٣", "not a transaction ID (digits only): '١٢٣'"),
        ("transaction_ids", "1" * 19, "more than 18 digits"),
        ("gsm_track_ids", "1-2", "not a GSM track ID (digits, or digits-digits-digits): '1-2'"),
        ("gsm_track_ids", "abc", "not a GSM track ID"),
        ("delivery_track_ids", "a\x00b", "control characters"),
    ],
)
def test_an_id_that_does_not_look_like_its_kind_is_refused(
    kind: str, text: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_id(kind, text)


def test_ids_of_each_kind_take_their_provider_form() -> None:
    assert parse_id("transaction_ids", "0042") == 42
    assert parse_id("gsm_track_ids", "410471976") == 410471976
    assert parse_id("gsm_track_ids", "16502030-4730-63032793") == "16502030-4730-63032793"
    assert parse_id("delivery_track_ids", "b627ffe79fc148e8ea7425222c4ed8") == (
        "b627ffe79fc148e8ea7425222c4ed8"
    )
    assert parse_id("delivery_track_ids", "123") == "123"  # a delivery track ID is text


def test_bad_lines_stop_the_run_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tx.txt", "123\n14096618x\n\n1.5e7\n-5\n456\n")
    with pytest.raises(InputError) as caught:
        read_inputs([Source("transaction_ids", path)])
    message = str(caught.value)
    assert "3 bad lines in the input; nothing was sent" in message
    assert f"{path}:2: not a transaction ID (digits only): '14096618x'" in message
    assert f"{path}:4: not a transaction ID (digits only): '1.5e7'" in message
    assert f"{path}:5: not a transaction ID (digits only): '-5'" in message
    assert "--skip-bad-lines" in message


def test_skip_bad_lines_counts_and_lists_them(tmp_path: Path) -> None:
    path = write(tmp_path, "tx.txt", "123\n14096618x\n456\n")
    inputs = read_inputs([Source("transaction_ids", path)], skip_bad_lines=True)
    assert ids(inputs.columns["transaction_ids"]) == [123, 456]
    assert inputs.bad_line_count == 1
    assert inputs.bad_lines == [f"{path}:2: not a transaction ID (digits only): '14096618x'"]


def test_a_long_list_of_bad_lines_is_cut_short(tmp_path: Path) -> None:
    path = write(tmp_path, "tx.txt", "x\n" * 100)
    with pytest.raises(InputError, match=r"\.\.\. and 80 more"):
        read_inputs([Source("transaction_ids", path)])


def test_a_line_that_is_not_utf8_refuses_the_whole_file(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", b"abc\n\xff\xfe\n")
    for skip in (False, True):
        with pytest.raises(InputError, match=r"d\.txt:2: not UTF-8 text"):
            read_inputs([Source("delivery_track_ids", path)], skip_bad_lines=skip)


def test_a_csv_export_read_as_lines_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "export.txt", "transaction_id,gsm\n14094857,905445359675\n")
    with pytest.raises(InputError, match=r"a CSV file\? name it \.csv or pass --input-format csv"):
        read_inputs([Source("transaction_ids", path)])


def test_a_csv_file_is_read_by_the_column_named_after_the_kind(tmp_path: Path) -> None:
    text = '\ufeffgsm,transaction_id,note\n905445359675, 14094857 ,"a, b"\n\n,,\n1,16334701,x\n'
    path = write(tmp_path, "export.csv", text)
    inputs = read_inputs([Source("transaction_ids", path)])
    assert ids(inputs.columns["transaction_ids"]) == [14094857, 16334701]


def test_csv_column_is_chosen_with_column_and_found_whatever_its_case(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "ID,Other\n14094857,1\n")
    inputs = read_inputs([Source("transaction_ids", path)], column="id")
    assert ids(inputs.columns["transaction_ids"]) == [14094857]


def test_input_format_csv_reads_any_file_as_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "export.txt", "gsm_track_id\n410471976\n1-2-3\n")
    inputs = read_inputs([Source("gsm_track_ids", path)], input_format="csv")
    assert ids(inputs.columns["gsm_track_ids"]) == [410471976, "1-2-3"]


def test_a_missing_csv_column_names_the_columns_there_are(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "gsm,status\n1,2\n")
    with pytest.raises(InputError) as caught:
        read_inputs([Source("transaction_ids", path)])
    assert f"{path}:1: no column 'transaction_id' in the CSV header (columns: 'gsm', 'status')" in (
        str(caught.value)
    )


def test_csv_rows_with_a_missing_id_or_the_wrong_width_are_bad_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "transaction_id,x\n,1\n5\n7,8\n")
    with pytest.raises(InputError) as caught:
        read_inputs([Source("transaction_ids", path)])
    assert f"{path}:2: no transaction ID in column 'transaction_id'" in str(caught.value)
    assert f"{path}:3: 1 fields where the header has 2" in str(caught.value)


def test_the_kind_id_form_mixes_kinds_as_a_failed_file_does(tmp_path: Path) -> None:
    text = (
        "kind,id,outcome,attempts,http_status,api_code,reason\n"
        "transaction_id,14094857,failed,4,503,,HTTP 503 Service Unavailable\n"
        "gsm_track_id,1-2-3,failed,1,,,x\n"
        "delivery_track_ids,abc,failed,1,,,x\n"
        "bogus,1,failed,1,,,x\n"
    )
    path = write(tmp_path, "failed.csv", text)
    inputs = read_inputs([Source(None, path)], skip_bad_lines=True)
    assert ids(inputs.columns["transaction_ids"]) == [14094857]
    assert ids(inputs.columns["gsm_track_ids"]) == ["1-2-3"]
    assert ids(inputs.columns["delivery_track_ids"]) == ["abc"]
    assert inputs.bad_lines == [
        f"{path}:5: unknown ID kind 'bogus' (transaction_id, delivery_track_id or gsm_track_id)"
    ]


@pytest.mark.parametrize("data", ["", "\n\n  \n", "\ufeff", "transaction_id\n"])
def test_an_empty_input_is_an_error(tmp_path: Path, data: str) -> None:
    path = write(tmp_path, "tx.csv" if "transaction_id" in data else "tx.txt", data)
    with pytest.raises(InputError, match="no IDs in the input"):
        read_inputs([Source("transaction_ids", path)])


def test_an_input_of_only_bad_lines_skipped_is_still_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "tx.txt", "x\n")
    with pytest.raises(InputError, match="no IDs in the input"):
        read_inputs([Source("transaction_ids", path)], skip_bad_lines=True)


def test_duplicates_are_kept_once_and_counted(tmp_path: Path) -> None:
    first = write(tmp_path, "a.txt", "1\n2\n1\n")
    second = write(tmp_path, "b.txt", "2\n0002\n3\n")
    inputs = read_inputs([Source("transaction_ids", first), Source("transaction_ids", second)])
    assert ids(inputs.columns["transaction_ids"]) == [1, 2, 3]
    assert inputs.duplicates == 3


def test_stdin_is_read_once_at_most(tmp_path: Path) -> None:
    inputs = read_inputs(
        [Source("gsm_track_ids", "-")], stdin=io.BytesIO(b"\xef\xbb\xbf410471976\n")
    )
    assert ids(inputs.columns["gsm_track_ids"]) == [410471976]
    assert inputs.sources[0].name == "<stdin>"
    with pytest.raises(InputError, match="only once"):
        read_inputs([Source("gsm_track_ids", "-"), Source("transaction_ids", "-")])


def test_an_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_inputs([Source("transaction_ids", str(tmp_path))])  # a directory


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.integers(0, 10**18 - 1),
            st.from_regex(r"[0-9]{1,5}-[0-9]{1,5}-[0-9]{1,5}", fullmatch=True),
        ),
        max_size=200,
    ),
    count=st.integers(1, 9),
)
def test_shards_cover_the_input_exactly_once(values: list[int | str], count: int) -> None:
    data = "\n".join(map(str, values)).encode()
    whole = read_inputs([Source("gsm_track_ids", "-")], stdin=io.BytesIO(data + b"\n1\n")).columns[
        "gsm_track_ids"
    ]
    slices: list[list[int | str]] = []
    for index in range(1, count + 1):
        shard = Shard(index, count)
        part = read_inputs(
            [Source("gsm_track_ids", "-")], stdin=io.BytesIO(data + b"\n1\n"), shard=shard
        )
        column = part.columns.get("gsm_track_ids")
        slices.append(list(column) if column is not None else [])
        assert all(shard_of("gsm_track_ids", v, count) == index for v in slices[-1])
    joined = [v for part in slices for v in part]
    assert sorted(map(str, joined)) == sorted(map(str, whole))  # every ID, once


def test_shard_slices_do_not_depend_on_the_machine() -> None:
    # CRC-32 of "kind:id", fixed for ever: N machines agree without talking.
    assert [shard_of("transaction_ids", v, 4) for v in (1, 2, 3, 14094857)] == [4, 2, 4, 1]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_a_shard_must_be_k_of_n(text: str) -> None:
    with pytest.raises(ValueError, match=r"K/N|between 1 and N"):
        Shard.parse(text)


# --- Output formats -------------------------------------------------------------------------


def report(track: int | str, status: int = 2, errorcode: int = 0) -> DetailedReport:
    return DetailedReport(
        gsm=905445359675,
        transaction_id=14094857,
        gsm_track_id=track,
        delivery_track_id='with "quotes", a comma\nand a newline',
        create_date=datetime(2016, 11, 2, 11, 47, 38),
        start_date=datetime(2016, 11, 2, 11, 47, 38),
        finish_date=None if status < 2 else datetime(2016, 11, 2, 12, 47, 42),
        status=status,
        sms_count=1,
        credit_amount=1,
        is_foreign_gsm=False,
        errorcode=errorcode,
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_what_is_written_is_read_back_with_each_row_end(fmt: str) -> None:
    encoder = RowEncoder(fmt)  # type: ignore[arg-type]
    batches = [[report(1), report("1-2-3", 4, 3)], [], [report(7, 3, 99)]]
    data = bytearray(encoder.header)
    ends = []
    written = 0
    for batch in batches:
        data += encoder.encode(batch, written)
        written += len(batch)
        ends.append(len(data))
    data += encoder.footer
    reader = RowReader(io.BytesIO(bytes(data)), fmt)  # type: ignore[arg-type]
    rows = list(reader)
    assert [(d.gsm_track_id, d.status, d.errorcode) for d, _ in rows] == [
        (1, 2, 0),
        ("1-2-3", 4, 3),
        (7, 3, 99),
    ]
    assert rows[1][1] == ends[0]
    assert rows[2][1] == ends[2]
    assert not reader.incomplete_tail
    if fmt == "json":
        assert reader.closed
        assert msgspec.json.decode(bytes(data), type=list[DetailedReport]) == [
            row for batch in batches for row in batch
        ]


def test_every_format_writes_dates_the_same_way() -> None:
    row = report(1)
    jsonl = RowEncoder("jsonl").encode([row], 0)
    csv_text = RowEncoder("csv").encode([row], 0).decode()
    assert b'"create_date":"2016-11-02T11:47:38"' in jsonl
    assert "2016-11-02T11:47:38" in csv_text
    assert RowEncoder("json").encode([row], 0) == jsonl.rstrip(b"\n")


def test_csv_carries_the_status_name_and_failure_reason_beside_the_codes() -> None:
    data = RowEncoder("csv").header + RowEncoder("csv").encode([report(5, 4, 3)], 0)
    import csv

    header, record = list(csv.reader(io.StringIO(data.decode())))
    assert tuple(header) == CSV_FIELDS
    fields = dict(zip(header, record, strict=True))
    assert fields["status"] == "4"
    assert fields["status_name"] == "TIMED_OUT"
    assert fields["errorcode"] == "3"
    assert fields["failure_reason"] == "Unreachable"
    assert fields["is_foreign_gsm"] == "0"
    assert fields["finish_date"] == "2016-11-02T12:47:42"


def test_an_incomplete_last_line_is_told_apart_from_garbage() -> None:
    whole = RowEncoder("jsonl").encode([report(1), report(2)], 0)
    reader = RowReader(io.BytesIO(whole[:-10]), "jsonl")
    assert len(list(reader)) == 1
    assert reader.incomplete_tail
    from organik_async._cli._formats import OutputProblem

    with pytest.raises(OutputProblem, match="line 3: not a report row"):
        list(RowReader(io.BytesIO(whole + b"garbage\n"), "jsonl"))


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [
        ("r.jsonl", None, "jsonl"),
        ("R.CSV", None, "csv"),
        ("r.json", None, "json"),
        ("-", None, "jsonl"),
        ("r.txt", "csv", "csv"),
        ("r.ndjson", None, "jsonl"),
    ],
)
def test_the_output_format_comes_from_the_extension_or_format(
    name: str, explicit: str | None, expected: str
) -> None:
    assert format_for(name, explicit) == expected


def test_an_output_of_unknown_extension_needs_format() -> None:
    with pytest.raises(InputError, match="pass --format"):
        format_for("report.txt", None)
