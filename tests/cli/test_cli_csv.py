"""CSV exports as an operator gets them: Excel in a Turkish locale, other delimiters, other
encodings, headers spelled another way, a single column.

The files are written byte for byte as those programs save them (``;`` between fields,
``\\r\\n`` line ends, windows-1254 or ISO-8859-9 text); each is read right, or refused
before anything is sent with a message that says which flag fixes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from organik_async._cli._inputs import IdColumn, InputError, Source, read_inputs
from organik_async.testing import FakeOrganikAPI
from tests.helpers.cli import DATASET, TX, rows_of, run, served, tracks

pytestmark = pytest.mark.usefixtures("api_key", "server")

TURKISH_HEADER = "İşlem No;Kampanya;Gönderim"


def turkish_export(ids: list[int], encoding: str) -> bytes:
    """What Excel on Turkish Windows saves as "CSV (semicolon delimited)"."""
    lines = [TURKISH_HEADER] + [f"{v};Kış kampanyası, İstanbul;12.07.2026 09:30" for v in ids]
    return "\r\n".join(lines).encode(encoding) + b"\r\n"


def write(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def ids(column: IdColumn) -> list[int | str]:
    return list(column)


@pytest.mark.parametrize("encoding", ["windows-1254", "iso-8859-9"])
def test_a_turkish_excel_export_is_read_with_its_encoding_and_semicolons(
    tmp_path: Path, encoding: str
) -> None:
    path = write(tmp_path, "islem.csv", turkish_export([14094857, 16334701], encoding))
    for column in ("İşlem No", "işlem no", "ISLEM_NO", "islemNo"):
        inputs = read_inputs(
            [Source("transaction_ids", path)], column=column, encoding="windows-1254"
        )
        assert ids(inputs.columns["transaction_ids"]) == [14094857, 16334701], column
    inputs = read_inputs([Source("transaction_ids", path)], column="İşlem No", encoding=encoding)
    assert ids(inputs.columns["transaction_ids"]) == [14094857, 16334701]


@pytest.mark.parametrize("encoding", ["windows-1254", "iso-8859-9"])
def test_a_file_that_is_not_utf8_is_refused_naming_the_encoding_and_the_flag(
    tmp_path: Path, encoding: str
) -> None:
    path = write(tmp_path, "islem.csv", turkish_export([14094857], encoding))
    for skip in (False, True):  # a wrong encoding is not a bad line to skip
        with pytest.raises(InputError) as caught:
            read_inputs([Source("transaction_ids", path)], column="İşlem No", skip_bad_lines=skip)
        message = str(caught.value)
        assert f"{path}:1: not UTF-8 text" in message
        assert "--encoding windows-1254" in message


def test_a_wrong_encoding_given_is_named_in_the_refusal(tmp_path: Path) -> None:
    path = write(tmp_path, "ids.txt", "ağ-1\n".encode() + "ş\n".encode("cp1254"))
    with pytest.raises(InputError, match=r"ids\.txt:2: not UTF-8 text"):
        read_inputs([Source("delivery_track_ids", path)], encoding="utf-8")
    data = bytes([0x81]) + b"\n"  # undefined in windows-1254
    path = write(tmp_path, "w.txt", data)
    with pytest.raises(InputError, match=r"w\.txt:1: not windows-1254 text.*--encoding"):
        read_inputs([Source("delivery_track_ids", path)], encoding="windows-1254")


def test_a_utf8_byte_order_mark_wins_over_the_encoding_given(tmp_path: Path) -> None:
    text = "\ufeff" + TURKISH_HEADER + "\r\n14094857;x;y\r\n"
    path = write(tmp_path, "islem.csv", text.encode("utf-8"))
    inputs = read_inputs(
        [Source("transaction_ids", path)], column="İşlem No", encoding="windows-1254"
    )
    assert ids(inputs.columns["transaction_ids"]) == [14094857]


def test_a_utf16_file_is_refused_with_what_to_save_instead(tmp_path: Path) -> None:
    path = write(tmp_path, "ids.txt", "İşlem No\t\r\n14094857\r\n".encode("utf-16"))
    with pytest.raises(InputError, match=r"UTF-16.*CSV UTF-8"):
        read_inputs([Source("transaction_ids", path)])


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_found_from_the_header(tmp_path: Path, delimiter: str) -> None:
    header = delimiter.join(["gsm", "Transaction ID", "note"])
    rows = [delimiter.join(["905445359675", str(v), '"a, b; c | d"']) for v in (1, 22)]
    path = write(tmp_path, "export.csv", "\r\n".join([header, *rows]) + "\r\n")
    inputs = read_inputs([Source("transaction_ids", path)])
    assert ids(inputs.columns["transaction_ids"]) == [1, 22]


def test_of_two_candidate_delimiters_the_one_that_yields_the_column_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "Ad, Soyad;İşlem No\r\nAli, Veli;14094857\r\n")
    inputs = read_inputs([Source("transaction_ids", path)], column="İşlem No")
    assert ids(inputs.columns["transaction_ids"]) == [14094857]


def test_delimiter_overrides_the_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "a,b;transaction_id\r\nx,y;14094857\r\n")
    inputs = read_inputs([Source("transaction_ids", path)], delimiter=";")
    assert ids(inputs.columns["transaction_ids"]) == [14094857]
    with pytest.raises(InputError, match=r"columns: 'a,b;transaction_id'.*--delimiter"):
        read_inputs([Source("transaction_ids", path)], delimiter="|")


@pytest.mark.parametrize(
    "name",
    ["transaction_id", "Transaction ID", "TransactionID", "TRANSACTION-ID", " transaction id "],
)
def test_header_names_match_whatever_their_case_spaces_and_underscores(
    tmp_path: Path, name: str
) -> None:
    path = write(tmp_path, "export.csv", f"gsm;{name}\n905445359675;14094857\n")
    inputs = read_inputs([Source("transaction_ids", path)])
    assert ids(inputs.columns["transaction_ids"]) == [14094857]


def test_two_columns_that_match_alike_are_refused_unless_one_is_exact(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "Transaction ID,TransactionID\n1,2\n")
    with pytest.raises(InputError, match=r"matches 2 columns.*--column"):
        read_inputs([Source("transaction_ids", path)])
    inputs = read_inputs([Source("transaction_ids", path)], column="TransactionID")
    assert ids(inputs.columns["transaction_ids"]) == [2]


def test_a_csv_of_one_column_is_read_whatever_its_header(tmp_path: Path) -> None:
    path = write(tmp_path, "islem.csv", "İşlem No\r\n14094857\r\n16334701\r\n")
    inputs = read_inputs([Source("transaction_ids", path)])
    assert ids(inputs.columns["transaction_ids"]) == [14094857, 16334701]
    with pytest.raises(
        InputError, match="no column 'gönderim'"
    ):  # a column asked for is insisted on
        read_inputs([Source("transaction_ids", path)], column="gönderim")


def test_a_csv_of_one_column_without_a_header_loses_no_id(tmp_path: Path) -> None:
    path = write(tmp_path, "ids.csv", "14094857\r\n16334701\r\n")
    inputs = read_inputs([Source("transaction_ids", path)])
    assert ids(inputs.columns["transaction_ids"]) == [14094857, 16334701]
    path = write(tmp_path, "tracks.csv", "1-2-3\n410471976\n")
    inputs = read_inputs([Source("gsm_track_ids", path)])
    assert sorted(map(str, inputs.columns["gsm_track_ids"])) == ["1-2-3", "410471976"]


def test_a_failed_file_saved_again_by_excel_is_read_back(tmp_path: Path) -> None:
    text = "kind;id;outcome\r\ntransaction_id;14094857;failed\r\ngsm_track_id;1-2-3;failed\r\n"
    path = write(tmp_path, "failed.csv", text.encode("windows-1254"))
    inputs = read_inputs([Source(None, path)])
    assert ids(inputs.columns["transaction_ids"]) == [14094857]
    assert ids(inputs.columns["gsm_track_ids"]) == ["1-2-3"]


# --- The command ----------------------------------------------------------------------------


def test_fetch_reads_a_turkish_excel_export_with_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = write(tmp_path, "islem.csv", turkish_export(TX[:5], "windows-1254"))
    out = tmp_path / "r.jsonl"
    fake = FakeOrganikAPI(DATASET)
    with served(fake) as url:
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", export,
                        "--column", "İşlem No", "-o", out)  # fmt: skip
        assert code == 2
        assert "not UTF-8 text" in err
        assert "--encoding windows-1254" in err
        assert fake.stats.requests == 0
        code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", export,
                        "--column", "İşlem No", "--encoding", "windows-1254",
                        "-o", out)  # fmt: skip
    assert code == 0, err
    assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:5]))


def test_fetch_takes_a_delimiter_by_character_or_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = write(
        tmp_path, "e.csv", "a,b;transaction_id\n" + "".join(f"x,y;{v}\n" for v in TX[:3])
    )
    with served(FakeOrganikAPI(DATASET)) as url:
        for given in (";", "semicolon"):
            out = tmp_path / "r.jsonl"
            code, err = run(capsys, "fetch", "--base-url", url, "--transaction-ids", export,
                            "--delimiter", given, "-o", out)  # fmt: skip
            assert code == 0, err
            assert tracks(rows_of(out)) == tracks(DATASET.expected(transaction_ids=TX[:3]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--delimiter", ";"], "--delimiter applies to CSV inputs"),
        (["--delimiter", "ab"], "one character"),
        (["--encoding", "no-such-encoding"], "unknown encoding"),
        (["--encoding", "utf-16"], "not supported"),
    ],
)
def test_bad_delimiter_or_encoding_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    ids_txt = write(tmp_path, "ids.txt", "1\n")
    code, err = run(capsys, "fetch", "--transaction-ids", ids_txt, *argv)
    assert code == 2
    assert message in err
